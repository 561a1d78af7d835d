CREATE TABLE secrets (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);
