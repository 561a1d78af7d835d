-- IDs, filenames and content types are any bytes, IDs ordered bytewise.
CREATE TABLE uploads (
	id           bytea PRIMARY KEY,
	owner        text NOT NULL,
	filename     bytea NOT NULL,
	size         bigint NOT NULL,
	content_type bytea NOT NULL,
	state        smallint NOT NULL,
	created      timestamptz NOT NULL,
	expires      timestamptz NOT NULL
);
CREATE INDEX uploads_owner ON uploads (owner, created, id);
CREATE INDEX uploads_expires ON uploads (expires, id);
