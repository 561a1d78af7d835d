-- A row per user with PEP nodes; writers lock it, so the node and byte
-- limits hold under concurrency. Names and IDs are any bytes.
CREATE TABLE pep_users (
	jid text PRIMARY KEY
);

CREATE TABLE pep_nodes (
	jid    text NOT NULL REFERENCES pep_users (jid) ON DELETE CASCADE,
	name   bytea NOT NULL,
	config bytea NOT NULL,
	PRIMARY KEY (jid, name)
);

-- seq orders a node's items by publication (a republished item gets a
-- new one).
CREATE TABLE pep_items (
	jid       text NOT NULL,
	node      bytea NOT NULL,
	id        bytea NOT NULL,
	payload   bytea NOT NULL,
	published timestamptz NOT NULL,
	seq       bigint GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (jid, node, id),
	FOREIGN KEY (jid, node) REFERENCES pep_nodes (jid, name) ON DELETE CASCADE
);
CREATE INDEX pep_items_seq ON pep_items (jid, node, seq);
