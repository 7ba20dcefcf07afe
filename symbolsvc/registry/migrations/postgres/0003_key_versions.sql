-- symbolsvc registry schema 3 (PostgreSQL): symbol-key versions of holdings
-- (docs/KEYS.md). Same columns as on SQLite. key_version is the version in the
-- symbol's "k<version>." prefix (a stored generated column: adding it rewrites
-- the table once); moved marks a row whose holding moved to a newer version and
-- that is kept in step with it until its version is retired. Computed columns
-- are accepted by CockroachDB, YugabyteDB and Citus alike.
ALTER TABLE holdings ADD COLUMN moved boolean NOT NULL DEFAULT false;
ALTER TABLE holdings ADD COLUMN key_version integer
  GENERATED ALWAYS AS (CAST(substr(split_part(symbol, '.', 1), 2) AS integer)) STORED;
