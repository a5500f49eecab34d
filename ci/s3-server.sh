#!/usr/bin/env bash
# Starts a moto S3 server on 127.0.0.1 with signature checking on, creates an IAM user with an
# s3:* policy and an access key, and prints `export VAR=...` lines for the S3 tests:
#
#   eval "$(ci/s3-server.sh)"        # then: cargo test --workspace ; kill "$PERSIST_S3_SERVER_PID"
#
# Environment: MOTO_SERVER (default: moto_server on PATH), PERSIST_S3_PORT (default: a free port),
# PERSIST_S3_LOG (default: a temp file), PERSIST_S3_SERVER_IDLE=1 to run the server at idle CPU
# priority (chrt --idle, else nice 19): for benchmarks, where moto stands in for a remote server
# whose CPU is not the program's. Everything but the exports goes to stderr.
#
# moto quirks handled here:
# - with INITIAL_NO_AUTH_ACTION_COUNT=3 the first three requests skip authentication, and any
#   request counts, so readiness is probed on /moto-api/ (not counted), never on /;
# - moto picks the service from the Authorization header's credential scope, so the three
#   unsigned IAM calls carry a dummy `Credential=.../us-east-1/iam/aws4_request` header (its
#   signature is not checked while the free calls last).
set -euo pipefail

moto=${MOTO_SERVER:-$(command -v moto_server || true)}
if [[ -z "$moto" || ! -x "$moto" ]]; then
    echo "s3-server.sh: moto_server not found (pip install 'moto[server]', or set MOTO_SERVER)" >&2
    exit 1
fi
python=$(dirname "$moto")/python3
[[ -x "$python" ]] || python=python3

port=${PERSIST_S3_PORT:-$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
log=${PERSIST_S3_LOG:-$(mktemp /tmp/moto-s3.XXXXXX.log)}
endpoint="http://127.0.0.1:$port"

launch=()
if [[ "${PERSIST_S3_SERVER_IDLE:-}" == 1 ]]; then
    if command -v chrt >/dev/null; then launch=(chrt --idle 0); else launch=(nice -n 19); fi
fi
INITIAL_NO_AUTH_ACTION_COUNT=3 nohup "${launch[@]}" "$moto" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
pid=$!
echo "s3-server.sh: moto pid $pid on $endpoint, log $log" >&2

for _ in $(seq 1 100); do
    if "$python" -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1]+'/moto-api/', timeout=1)" "$endpoint" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "s3-server.sh: moto exited; log:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.2
done

creds=$("$python" - "$endpoint" <<'PY'
import json, sys, urllib.parse, urllib.request, xml.etree.ElementTree as ET

endpoint = sys.argv[1]
auth = ("AWS4-HMAC-SHA256 Credential=setup/20260101/us-east-1/iam/aws4_request, "
        "SignedHeaders=host, Signature=0")

def iam(**params):
    params["Version"] = "2010-05-08"
    req = urllib.request.Request(endpoint + "/", data=urllib.parse.urlencode(params).encode(),
                                 headers={"Authorization": auth,
                                          "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return ET.fromstring(r.read())

iam(Action="CreateUser", UserName="persist-ci")
key = iam(Action="CreateAccessKey", UserName="persist-ci")
ns = {"i": "https://iam.amazonaws.com/doc/2010-05-08/"}
kid = key.find(".//i:AccessKeyId", ns).text
secret = key.find(".//i:SecretAccessKey", ns).text
policy = {"Version": "2012-10-17",
          "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
iam(Action="PutUserPolicy", UserName="persist-ci", PolicyName="s3-all",
    PolicyDocument=json.dumps(policy))
print(kid, secret)
PY
)
read -r key_id secret <<<"$creds"

cat <<OUT
export PERSIST_S3_ENDPOINT=$endpoint
export PERSIST_S3_SERVER_PID=$pid
export PERSIST_S3_MOTO_SERVER=$moto
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=$endpoint
export AWS_ALLOW_HTTP=true
OUT
