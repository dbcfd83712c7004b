-- Users of the Crypto Capital account API (`domain/ccc.rs`) live in the generic entity tables,
-- one per Bitcoin address; an operator's KYC gives each an IBAN of its own, found by it when
-- a bank payment names it.
CREATE UNIQUE INDEX entities_ccc_user_iban ON entities (kind, (lookup ->> 'iban')) WHERE kind = 'ccc_user';
