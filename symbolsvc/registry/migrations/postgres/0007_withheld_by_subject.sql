-- symbolsvc registry schema 7 (PostgreSQL): a subject's withheld records found without
-- reading the subject's other records (see the SQLite file of the same number). A partial
-- index, as access_records_withheld in schema 6: portable to Citus, CockroachDB and
-- YugabyteDB.
CREATE INDEX access_records_withheld_by_subject
  ON access_records (pseudonym, withheld_until_us) WHERE withheld_until_us IS NOT NULL;
