-- The number of messages of each archive, kept beside its last ID by
-- every append, expiry and deletion, so that ArchiveStats (asked by
-- every MAM query for the RSM count) reads one row instead of counting
-- the archive.
ALTER TABLE archive_last ADD COLUMN n bigint NOT NULL DEFAULT 0;
UPDATE archive_last SET n = (SELECT count(*) FROM archive WHERE archive.jid = archive_last.jid);
