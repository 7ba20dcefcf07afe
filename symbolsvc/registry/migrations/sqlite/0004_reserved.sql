-- Placeholder on branch i13 only: schema 0004 belongs to another branch (issue 13 took
-- 0006). The lead deletes this file when merging the real 0004.
SELECT 1;
