#!/bin/sh
# Brings /data to schema 2 (1: the counter file exists; 2: it holds a number).
# Idempotent: a second run (every `up`) finds schema 2 and changes nothing.
set -e
schema=$(cat /data/schema 2>/dev/null || echo 0)
echo "migrate: data at schema $schema"
if [ "$schema" -lt 1 ]; then
    [ -f /data/count ] || echo 0 >/data/count
    echo 1 >/data/schema
    echo "migrate: -> schema 1"
fi
if [ "$schema" -lt 2 ]; then
    n=$(cat /data/count)
    case "$n" in '' | *[!0-9]*) n=0 ;; esac
    echo "$n" >/data/count
    echo 2 >/data/schema
    echo "migrate: -> schema 2"
fi
echo "migrate: done"
