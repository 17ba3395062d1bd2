-- The report PKI (CA and signing certificate) of the deployment, one row: every instance
-- signs with the same certificate and publishes the same CA. Private keys are sealed with the
-- master key, as session secrets are.
CREATE TABLE report_pki (
    id                 TEXT PRIMARY KEY NOT NULL,
    ca_cert_pem        TEXT NOT NULL,
    sealed_ca_key      BLOB NOT NULL,
    signing_cert_pem   TEXT NOT NULL,
    sealed_signing_key BLOB NOT NULL,
    created_at         TIMESTAMP NOT NULL
);
