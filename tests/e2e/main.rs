//! End-to-end tests of `cashgrid` as a drop-in dncash-io server.
//!
//! Every test starts the real binary (`cashgrid serve --bind 127.0.0.1:0`) on a fresh store,
//! sets customers and credentials up through the binary's CLI, and talks HTTP to it like a
//! bank, a phone app and an ATM would. Each scenario is written once, as
//! `async fn scenario(backend: Backend)`, and runs twice: `sqlite::<scenario>` on the embedded
//! store and `postgres::<scenario>` on a PostgreSQL database created for that test alone
//! (admin URL from `CASHGRID_TEST_DATABASE_URL`; `CASHGRID_SKIP_POSTGRES=1` skips the
//! PostgreSQL half when no server is reachable).
//!
//! The wire facts checked here come from `shared/spec/dncash-io-api.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod flows;
mod harness;
mod phone;
mod wire;

mod cashout;
mod claims;
mod code_storage;
mod compat;
mod durability;
mod errors;
mod expiry;
mod operations;
mod partial_cashouts;
mod plain_codes;
mod resilience;
mod token_api;

/// One `#[actix_web::test]` per backend for each `module::scenario`.
macro_rules! scenarios_on_both_backends {
    ($($module:ident :: $scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[actix_web::test]
                async fn $scenario() {
                    crate::$module::$scenario(crate::harness::Backend::Sqlite).await;
                }
            )*
        }

        mod postgres {
            $(
                #[actix_web::test]
                async fn $scenario() {
                    if let Some(backend) = crate::harness::Backend::postgres_unless_skipped().await {
                        crate::$module::$scenario(backend).await;
                    }
                }
            )*
        }
    };
}

scenarios_on_both_backends! {
    cashout::a_full_cash_out_takes_a_token_from_open_to_completed,
    cashout::phones_with_pkcs1_spki_and_rewrapped_keys_all_receive_working_codes,
    cashout::devices_keep_type_position_and_info_as_registered,
    cashout::a_cash_in_token_may_be_confirmed_with_a_larger_amount,
    claims::only_one_of_32_concurrent_claims_of_a_token_wins,
    claims::claim_with_wrong_secure_code_rejects_the_token,
    claims::a_locked_token_cannot_be_claimed_again,
    durability::every_acknowledged_confirm_survives_a_server_kill,
    errors::request_errors_answer_in_the_protocol_format,
    errors::request_errors_answer_with_4xx_statuses_when_asked,
    errors::token_api_errors_answer_in_the_protocol_format,
    errors::token_api_errors_answer_with_4xx_statuses_when_asked,
    errors::claim_errors_answer_in_the_protocol_format,
    errors::claim_errors_answer_with_4xx_statuses_when_asked,
    errors::confirm_errors_answer_in_the_protocol_format,
    errors::confirm_errors_answer_with_4xx_statuses_when_asked,
    plain_codes::plain_code_tokens_are_claimed_with_the_short_radiocode,
    plain_codes::a_wrong_short_code_rejects_a_plain_code_token,
    plain_codes::tokens_have_no_plain_code_unless_the_customer_asks,
    token_api::the_owner_deletes_an_open_token_but_not_a_claimed_one,
    token_api::the_owner_updates_clearstate_and_info_in_any_state,
    token_api::other_customers_see_neither_devices_nor_tokens,
    token_api::a_foreign_cash_device_may_claim_but_only_the_locking_device_confirms,
    token_api::listing_by_device_shows_only_its_open_tokens,
    partial_cashouts::a_partial_cash_out_reissues_the_remainder_under_the_same_code,
    partial_cashouts::without_partial_cash_outs_a_smaller_confirm_reissues_nothing,
    compat::radiocodes_are_read_like_the_original_reads_them,
    compat::lookups_and_paths_ignore_case_like_the_original,
    expiry::an_expired_token_cannot_be_claimed,
    operations::health_and_metrics_answer,
    operations::responses_carry_the_original_cache_and_cors_headers,
    code_storage::secure_codes_and_api_secrets_are_never_stored_in_cleartext,
    code_storage::secure_codes_and_api_secrets_never_appear_in_server_logs,
    code_storage::secure_codes_are_encrypted_with_random_padding,
}

/// Scenarios that need PostgreSQL itself (its connections can be cut from outside).
mod postgres_only {
    #[actix_web::test]
    async fn postgres_lost_connections_answer_503_and_the_server_recovers() {
        if let Some(backend) = crate::harness::Backend::postgres_unless_skipped().await {
            crate::resilience::a_lost_database_connection_answers_503_and_the_server_recovers(backend).await;
        }
    }
}
