#!/bin/sh
# Write .env (next to docker-compose.yml) from docker/.env.example with fresh random secrets.
# Refuses to overwrite an existing .env.
set -eu
cd "$(dirname "$0")/.."
if [ -e .env ]; then
    echo ".env exists; leaving it alone" >&2
    exit 1
fi
secret() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
umask 077
sed -e "s/^POSTGRES_PASSWORD=\$/POSTGRES_PASSWORD=$(secret)/" \
    -e "s/^AIRFLOW_JWT_SECRET=\$/AIRFLOW_JWT_SECRET=$(secret)/" \
    -e "s/^AIRFLOW_API_SECRET_KEY=\$/AIRFLOW_API_SECRET_KEY=$(secret)/" \
    -e "s/^FLOWER_BASIC_AUTH=\$/FLOWER_BASIC_AUTH=flower:$(secret)/" \
    docker/.env.example > .env
echo "wrote .env (mode 600)"
