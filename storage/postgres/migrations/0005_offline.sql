-- The last Seq assigned per user; its row also serialises pushes.
CREATE TABLE offline_seq (
	jid text PRIMARY KEY,
	seq bigint NOT NULL
);

CREATE TABLE offline (
	jid    text NOT NULL,
	seq    bigint NOT NULL,
	stored timestamptz NOT NULL,
	data   bytea NOT NULL,
	PRIMARY KEY (jid, seq)
);
CREATE INDEX offline_stored ON offline (stored);
