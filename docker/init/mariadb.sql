-- Demo schema and the least-privilege `tandem` user for docker/compose.yaml.
-- Runs once, as root, in the database MARIADB_DATABASE (`app`), when the data
-- volume is first created. The password must match TANDEM_MYSQL_PASSWORD in
-- compose.yaml: change both together.

CREATE USER 'tandem'@'%' IDENTIFIED BY 'tandem-demo-pw';
-- Read the binlog (REPLICATION CLIENT is BINLOG MONITOR on MariaDB >= 10.5).
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'tandem'@'%';
-- Apply changes (DROP: replicated TRUNCATE).
GRANT SELECT, INSERT, UPDATE, DELETE, DROP ON `app`.* TO 'tandem'@'%';
-- The state database, created by `tandem init`.
GRANT ALL PRIVILEGES ON `tandem`.* TO 'tandem'@'%';

CREATE TABLE `app`.customers (
    id             BIGINT PRIMARY KEY,
    name           TEXT NOT NULL,
    email          TEXT,
    loyalty_points INT NOT NULL DEFAULT 0,
    updated_at     DATETIME(6) NOT NULL DEFAULT UTC_TIMESTAMP(6)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The same rows as in postgres.sql: both sides start in sync.
INSERT INTO `app`.customers (id, name, email, loyalty_points, updated_at) VALUES
    (1, 'Ada Lovelace', 'ada@example.com', 120, '2024-01-01 09:00:00'),
    (2, 'Grace Hopper', 'grace@example.com', 80, '2024-01-01 09:00:00'),
    (3, 'Edsger Dijkstra', NULL, 0, '2024-01-01 09:00:00');
