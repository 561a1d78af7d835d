-- Namespaces and keys are any bytes (not only UTF-8), ordered bytewise.
CREATE TABLE service_data (
	namespace bytea NOT NULL,
	key       bytea NOT NULL,
	value     bytea NOT NULL,
	expires   timestamptz,
	PRIMARY KEY (namespace, key)
);
CREATE INDEX service_data_expires ON service_data (expires) WHERE expires IS NOT NULL;
