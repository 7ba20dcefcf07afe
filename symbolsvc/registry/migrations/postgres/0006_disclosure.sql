-- symbolsvc registry schema 6 (PostgreSQL): what the person sees (issue 13,
-- docs/DISCLOSURE.md). Same columns as on SQLite; portable to Citus, CockroachDB
-- and YugabyteDB (nullable columns without defaults: no table rewrite). Holdings get no
-- time column (see the SQLite file: it would link a holding to its ISSUE record).

ALTER TABLE access_records ADD COLUMN withheld_until_us bigint;
CREATE INDEX access_records_withheld
  ON access_records (withheld_until_us, id) WHERE withheld_until_us IS NOT NULL;

CREATE TABLE policy_versions (
  version      bytea  PRIMARY KEY,
  record_id    bigint NOT NULL,
  loaded_at_us bigint NOT NULL
);
