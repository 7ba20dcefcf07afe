-- symbolsvc registry schema 6 (SQLite): what the person sees (issue 13, docs/DISCLOSURE.md).
-- issued_at_us / released_at_us: when the holding (row) was issued or re-created, and when
-- it was released (NULL while live, and for rows written before this schema). Each is a
-- time of one agency's row only: no value shared between one subject's rows for two agencies.
ALTER TABLE holdings ADD COLUMN issued_at_us INTEGER;
ALTER TABLE holdings ADD COLUMN released_at_us INTEGER;

-- withheld_until_us: a record made under a rule with withhold_days is not listed or
-- watched before this time (a copy of the leaf's WITHHELD_UNTIL extension, so the
-- portal's queries need not decode leaves). NULL: disclosed at once.
ALTER TABLE access_records ADD COLUMN withheld_until_us INTEGER;
CREATE INDEX IF NOT EXISTS access_records_withheld
  ON access_records (withheld_until_us, id) WHERE withheld_until_us IS NOT NULL;

-- Every permission table version ever published: its POLICY record and load time.
-- version is the SHA-256 of the canonical table (the leaf carries the table itself).
CREATE TABLE IF NOT EXISTS policy_versions (
  version      BLOB    PRIMARY KEY,
  record_id    INTEGER NOT NULL,
  loaded_at_us INTEGER NOT NULL
) WITHOUT ROWID;
