#!/bin/sh
# The MongoDB health check: initiates the single-node replica set once, then answers 0 while it is a
# healthy primary. Runs with the root credentials the container was started with.
exec mongosh --quiet -u "$MONGO_INITDB_ROOT_USERNAME" -p "$MONGO_INITDB_ROOT_PASSWORD" --authenticationDatabase admin \
  --eval 'try { quit(rs.status().myState === 1 ? 0 : 1) } catch (e) { rs.initiate({_id: "rs0", members: [{_id: 0, host: "mongo:27017"}]}); quit(1) }'
