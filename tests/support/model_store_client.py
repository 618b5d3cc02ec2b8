"""S3 calls for tests/support/model_store.py, run with the model store's own
interpreter (boto3 lives there, not in the operator's venv: see
model_store.py). One JSON request on stdin, one JSON answer on stdout.

    {"endpoint": ..., "region": ..., "key_id": ..., "secret": ..., "op": ..., ...}

ops: "setup" (IAM user with an S3 policy, its access key, the bucket; the
server's first unauthenticated calls), "put" (files), "get", "list".
Not a test module: pytest never imports it (no test_ prefix)."""
from __future__ import annotations

import base64
import json
import sys

import boto3
import botocore.exceptions

S3_POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


def client(service: str, request: dict):
    return boto3.client(service, endpoint_url=request["endpoint"], region_name=request["region"],
                        aws_access_key_id=request["key_id"], aws_secret_access_key=request["secret"])


def setup(request: dict) -> dict:
    iam = client("iam", request)
    iam.create_user(UserName=request["user"])
    iam.put_user_policy(UserName=request["user"], PolicyName="models", PolicyDocument=json.dumps(S3_POLICY))
    key = iam.create_access_key(UserName=request["user"])["AccessKey"]
    signed = {**request, "key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    client("s3", signed).create_bucket(Bucket=request["bucket"])
    return {"key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def put(request: dict) -> dict:
    s3 = client("s3", request)
    for key, path in request["files"].items():
        s3.upload_file(path, request["bucket"], key)
    return {"put": sorted(request["files"])}


def get(request: dict) -> dict:
    body = client("s3", request).get_object(Bucket=request["bucket"], Key=request["key"])["Body"].read()
    return {"data": base64.b64encode(body).decode()}


def list_keys(request: dict) -> dict:
    pages = client("s3", request).get_paginator("list_objects_v2").paginate(
        Bucket=request["bucket"], Prefix=request.get("prefix", ""))
    return {"keys": [item["Key"] for page in pages for item in page.get("Contents", [])]}


OPS = {"setup": setup, "put": put, "get": get, "list": list_keys}


def main() -> int:
    request = json.load(sys.stdin)
    try:
        answer = OPS[request["op"]](request)
    except botocore.exceptions.ClientError as error:
        answer = {"error": error.response["Error"].get("Code", "?"), "message": str(error)}
    json.dump(answer, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
