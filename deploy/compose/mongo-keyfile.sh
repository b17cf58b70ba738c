#!/bin/sh
# A replica set with authentication needs a shared key file; it is written from MONGODB_REPLICA_KEY (a
# secret from the environment) with the owner and mode mongod insists on, then the image's entrypoint runs.
set -eu
printf '%s' "$MONGODB_REPLICA_KEY" > /tmp/replica.key
chmod 400 /tmp/replica.key
chown 999:999 /tmp/replica.key
exec docker-entrypoint.sh "$@"
