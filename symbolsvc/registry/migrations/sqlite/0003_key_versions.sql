-- symbolsvc registry schema 3 (SQLite): symbol-key versions of holdings (docs/KEYS.md).
-- key_version is the version in the symbol's "k<version>." prefix, as a column so
-- `symbolsvc keys status` and `keys retire` can count holdings per version.
-- moved = 1 marks a row whose holding has moved to a newer key version: the row
-- stays so the agency's older symbol keeps working until its version is retired,
-- and its released flag is kept in step with the holding's current row.
-- Both columns hold nothing that is not already in the row (the version is the
-- symbol's prefix): no value shared between one subject's rows for two agencies.
ALTER TABLE holdings ADD COLUMN moved INTEGER NOT NULL DEFAULT 0 CHECK (moved IN (0, 1));
ALTER TABLE holdings ADD COLUMN key_version INTEGER
  GENERATED ALWAYS AS (CAST(substr(symbol, 2, instr(symbol, '.') - 2) AS INTEGER)) VIRTUAL;
