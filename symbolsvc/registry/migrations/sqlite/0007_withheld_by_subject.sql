-- symbolsvc registry schema 7 (SQLite): a subject's withheld records found without
-- reading the subject's other records.
--
-- ListAccessRecords and ListHoldings ask how many of a subject's records are withheld
-- (WHERE pseudonym = ? AND withheld_until_us > ?). Through access_records_by_subject
-- that reads every record of the subject to look at withheld_until_us: 2.8 ms at 900
-- records, so the portal's reads grew with each person's history and, in the 30-minute
-- soak, took a growing share of the machine (docs/BENCHMARKS.md, "Soak, third look").
-- This index holds only the withheld rows, so the count costs the number of withheld
-- records of that subject, usually none.
CREATE INDEX IF NOT EXISTS access_records_withheld_by_subject
  ON access_records (pseudonym, withheld_until_us) WHERE withheld_until_us IS NOT NULL;
