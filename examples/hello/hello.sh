#!/bin/sh
echo "$GREETING: running as $(whoami) in $(pwd)"
