#!/bin/sh
echo "$GREETING: running as $(id -un) in $(pwd)"
