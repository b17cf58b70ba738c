#!/bin/sh
# Initiates the single-node replica set once; the healthcheck runs it until it answers "ok".
mongosh --quiet --eval 'try { rs.status().ok } catch (e) { rs.initiate({_id: "rs0", members: [{_id: 0, host: "mongo:27017"}]}).ok }'
