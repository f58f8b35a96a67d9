#!/usr/bin/env python3
"""Prepares a moto S3 server that enforces credentials (INITIAL_NO_AUTH_ACTION_COUNT=3):
the three free IAM calls create a user with an s3:* policy and an access key; the key then
creates the bucket and uploads the objects.

Usage: s3_setup.py ENDPOINT BUCKET KEY=PATH...   Prints "ACCESS_KEY_ID SECRET_ACCESS_KEY".
"""
import json, sys
import boto3

endpoint, bucket, uploads = sys.argv[1], sys.argv[2], sys.argv[3:]
common = dict(endpoint_url=endpoint, region_name="us-east-1")
iam = boto3.client("iam", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap", **common)
iam.create_user(UserName="builder")
iam.put_user_policy(
    UserName="builder",
    PolicyName="s3-all",
    PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }),
)
key = iam.create_access_key(UserName="builder")["AccessKey"]
s3 = boto3.client("s3", aws_access_key_id=key["AccessKeyId"],
                  aws_secret_access_key=key["SecretAccessKey"], **common)
s3.create_bucket(Bucket=bucket)
for upload in uploads:
    name, path = upload.split("=", 1)
    with open(path, "rb") as f:
        s3.put_object(Bucket=bucket, Key=name, Body=f.read())
print(key["AccessKeyId"], key["SecretAccessKey"])
