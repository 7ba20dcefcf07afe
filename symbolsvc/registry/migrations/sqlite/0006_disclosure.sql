-- symbolsvc registry schema 6 (SQLite): what the person sees (issue 13, docs/DISCLOSURE.md).
-- Holdings get no time column: a time in a holding's row equal (or close) to its ISSUE
-- record's time would join the row to the record's subject pseudonym, and so link one
-- subject's holdings across agencies. ListHoldings takes its dates from the records.

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
