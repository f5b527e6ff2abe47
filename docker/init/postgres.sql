-- Demo schema and the least-privilege `tandem` role for docker/compose.yaml.
-- Runs once, as the superuser, in the database POSTGRES_DB ("app"), when the
-- data volume is first created. The password must match
-- TANDEM_POSTGRES_PASSWORD in compose.yaml: change both together.

CREATE ROLE tandem LOGIN REPLICATION PASSWORD 'tandem-demo-pw';

-- `tandem init` creates the state schema and the publication.
DO $$ BEGIN EXECUTE format('GRANT CREATE ON DATABASE %I TO tandem', current_database()); END $$;

-- Echo suppression: tandem's writes carry the replication origin tandem_<pipeline>.
GRANT EXECUTE ON FUNCTION pg_replication_origin_create(text) TO tandem;
GRANT EXECUTE ON FUNCTION pg_replication_origin_session_setup(text) TO tandem;
GRANT EXECUTE ON FUNCTION pg_replication_origin_session_reset() TO tandem;
GRANT EXECUTE ON FUNCTION pg_replication_origin_xact_setup(pg_lsn, timestamptz) TO tandem;

CREATE TABLE public.customers (
    id             bigint PRIMARY KEY,
    name           text NOT NULL,
    email          text,
    loyalty_points integer NOT NULL DEFAULT 0,
    updated_at     timestamp(6) NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);
-- The owner may add the table to a publication and set REPLICA IDENTITY FULL.
ALTER TABLE public.customers OWNER TO tandem;

-- The same rows as in mariadb.sql: both sides start in sync.
INSERT INTO public.customers (id, name, email, loyalty_points, updated_at) VALUES
    (1, 'Ada Lovelace', 'ada@example.com', 120, '2024-01-01 09:00:00'),
    (2, 'Grace Hopper', 'grace@example.com', 80, '2024-01-01 09:00:00'),
    (3, 'Edsger Dijkstra', NULL, 0, '2024-01-01 09:00:00');
