CREATE TABLE accounts (
	jid        text PRIMARY KEY,
	domain     text NOT NULL,
	created    date NOT NULL,
	last_login date,
	removed    date
);
CREATE INDEX accounts_domain ON accounts (domain, jid COLLATE "C");

CREATE TABLE account_keys (
	jid        text NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
	hash       text NOT NULL,
	salt       bytea NOT NULL,
	iterations integer NOT NULL,
	stored_key bytea NOT NULL,
	server_key bytea NOT NULL,
	PRIMARY KEY (jid, hash)
);
