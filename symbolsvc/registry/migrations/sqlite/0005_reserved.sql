-- Placeholder on branch i13 only: schema 0005 belongs to another branch (issue 13 took
-- 0006). The lead deletes this file when merging the real 0005.
SELECT 1;
