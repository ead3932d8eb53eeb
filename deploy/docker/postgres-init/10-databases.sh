#!/bin/sh
# First start of the compose stack's PostgreSQL: the order database (written by the
# demo feeder, read by a read-only user) and the watchdog's state database.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<SQL
CREATE ROLE feeder LOGIN PASSWORD '${FEEDER_DB_PASSWORD}';
CREATE ROLE orders_reader LOGIN PASSWORD '${ORDERS_DB_PASSWORD}';
CREATE ROLE watchdog LOGIN PASSWORD '${WATCHDOG_STATE_PASSWORD}';
CREATE DATABASE orders OWNER feeder;
CREATE DATABASE watchdog_state OWNER watchdog;
SQL
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname orders <<SQL
GRANT CONNECT ON DATABASE orders TO orders_reader;
GRANT USAGE ON SCHEMA public TO orders_reader;
-- The feeder creates the table later: grant SELECT on what it will create.
ALTER DEFAULT PRIVILEGES FOR ROLE feeder IN SCHEMA public GRANT SELECT ON TABLES TO orders_reader;
ALTER ROLE orders_reader SET default_transaction_read_only = on;
SQL
