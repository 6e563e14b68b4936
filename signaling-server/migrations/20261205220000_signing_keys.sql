-- JWT signing keys in the database (#12), so that every node of a cluster signs and verifies
-- with the same ring. The Ed25519 seed is sealed with the master key (`Pii::wrap_key`, bound to
-- `signing-key:<kid>`): the database alone does not give the keys away. The active key is the
-- newest one not retired; a retired key stays until every token it signed has expired.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    sealed_seed TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
