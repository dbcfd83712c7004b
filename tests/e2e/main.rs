//! End-to-end tests of `cashgrid` as a drop-in dncash-io server.
//!
//! Every test starts the real binary (`cashgrid serve --bind 127.0.0.1:0`) on a fresh store,
//! sets customers and credentials up through the binary's CLI, and talks HTTP to it like a
//! bank, a phone app and an ATM would. Each scenario is written once, as
//! `async fn scenario(backend: Backend)`, and runs twice: `sqlite::<scenario>` on the embedded
//! store and `postgres::<scenario>` on a PostgreSQL database created for that test alone, a
//! copy of a template migrated once per migration set (`tests/support/database.rs`; admin URL
//! from `CASHGRID_TEST_DATABASE_URL`). A PostgreSQL test that cannot reach its
//! server fails; `scripts/test.sh` with `CASHGRID_SKIP_POSTGRES=1` leaves the `postgres` and
//! `postgres_only` modules out with a nextest filter, so they show as skipped.
//!
//! The wire facts checked here come from `shared/spec/dncash-io-api.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod api_documents;
#[path = "../support/database.rs"]
mod database;
mod flows;
mod hardening;
mod harness;
mod hung_database;
mod phone;
mod wire;

mod active_expiry;
mod admin;
mod admin_resources;
mod cashout;
mod ccc;
mod claims;
mod clearing;
mod code_storage;
mod compat;
mod durability;
mod errors;
mod expiry;
mod https;
mod ledger;
mod live_feeds;
mod mqtt;
mod operations;
mod partial_cashouts;
mod plain_codes;
mod resilience;
mod token_api;
mod triggers;

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
                    crate::$module::$scenario(crate::harness::Backend::Postgres).await;
                }
            )*
        }
    };
}

scenarios_on_both_backends! {
    ledger::an_operator_funds_a_bank_that_moves_money_holds_it_and_reads_its_statement,
    ledger::the_ledger_answers_bad_input_in_its_own_format_and_changes_nothing,
    ledger::the_cli_opens_accounts_and_moves_money_beside_the_running_server,
    ledger::the_ledger_feed_streams_each_customers_journal_lines_and_resumes_without_a_gap,
    ledger::a_kill_under_load_loses_no_acknowledged_transfer_and_leaves_no_half_one,
    ccc::a_bitcoin_key_authenticates_registers_and_reads_its_account,
    ccc::abuse_closes_the_connection_and_nothing_else,
    ccc::deposits_and_transfers_move_money_and_history_replays_them,
    ccc::payouts_to_an_iban_are_held_then_complete_fail_or_time_out,
    ccc::the_operator_api_books_deposits_verifies_users_and_settles_payouts,
    ccc::notifications_reach_a_users_sockets_on_every_node,
    api_documents::every_document_is_served_and_every_operation_is_routed,
    live_feeds::a_bank_sees_every_state_change_of_a_thousand_tokens_in_order_across_a_reconnect,
    live_feeds::the_original_feeds_tell_owner_cash_customer_and_admin_which_token_changed,
    live_feeds::unknown_keys_and_paths_are_closed_at_once,
    live_feeds::the_admin_feed_needs_a_portal_session_and_says_change,
    live_feeds::a_consumer_that_stops_reading_is_closed_with_the_seq_to_resume_from,
    live_feeds::event_feeds_show_each_party_only_its_own_devices,
    active_expiry::an_open_token_expires_on_time_without_a_claim_and_the_feed_says_so,
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
    operations::store_gauges_count_tokens_per_state_and_show_pool_usage,
    operations::finished_tokens_leave_memory_and_still_answer,
    operations::responses_carry_the_original_cache_and_cors_headers,
    code_storage::secure_codes_and_api_secrets_are_never_stored_in_cleartext,
    code_storage::secure_codes_and_api_secrets_never_appear_in_server_logs,
    code_storage::secure_codes_are_encrypted_with_random_padding,
    triggers::a_phone_trigger_locks_the_token_and_answers_the_waiting_poll,
    triggers::a_used_trigger_cannot_be_used_again,
    triggers::an_expired_trigger_is_refused,
    triggers::a_bad_signature_rejects_the_token_and_keeps_the_trigger,
    triggers::a_missing_signature_is_refused_and_leaves_the_token_open,
    triggers::a_wrong_code_through_a_trigger_answers_in_the_global_error_format,
    triggers::a_newer_poll_takes_over_and_the_older_one_is_answered,
    triggers::a_long_poll_ends_after_the_server_bound_and_the_trigger_stays_valid,
    triggers::fixed_trigger_codes_are_the_cash_device_uuid,
    triggers::the_device_socket_receives_locked_tokens,
    triggers::only_the_cash_customer_of_a_trigger_may_poll_it,
    triggers::the_atm_poll_is_answered_before_the_phones_204,
    mqtt::a_trigger_cash_out_is_published_signed_on_mqtt,
    https::the_server_speaks_https_with_the_configured_certificate,
    https::forwarded_addresses_are_believed_only_from_trusted_proxies,
    clearing::completed_cash_outs_and_cash_ins_leave_one_clearing_row_each,
    clearing::clearing_sums_name_debitor_and_creditor,
    clearing::clearing_filters_read_dates_and_types_like_the_original,
    clearing::other_customers_see_no_clearings_and_admins_name_whom_they_see,
    clearing::clearing_rows_snapshot_each_partys_default_account,
    admin::registration_and_login_issue_jwts_with_the_original_claims,
    admin::wrong_passwords_are_answered_ever_later,
    admin::two_factor_login_needs_the_current_code,
    admin::password_changes_follow_the_original_rules,
    admin::only_admins_create_users_and_manage_customers,
    admin_resources::api_credentials_are_created_revealed_and_deleted,
    admin_resources::parameters_switch_plain_codes_on_and_off,
    admin_resources::accounts_keep_exactly_one_default,
    admin_resources::token_stats_journal_and_devices_follow_a_cash_out,
    admin_resources::the_store_holds_no_plaintext_password_or_api_secret,
    hardening::nul_bytes_are_refused_at_the_edge_and_change_nothing,
    hardening::one_customers_nul_bytes_never_fail_another_customers_writes,
    hardening::amounts_are_bounded_and_their_sums_never_overflow,
    hardening::a_retried_create_with_an_idempotency_key_answers_the_original_result,
    hardening::a_deleted_customers_session_ends,
}

/// Scenarios about the HTTP edge, the same on either store: run once, on the embedded one.
mod sqlite_only {
    #[actix_web::test]
    async fn sqlite_a_slow_body_is_cut_at_the_body_deadline() {
        crate::hardening::a_slow_body_is_cut_at_the_body_deadline(crate::harness::Backend::Sqlite).await;
    }

    #[actix_web::test]
    async fn sqlite_weak_phone_keys_are_refused_with_the_reason() {
        crate::hardening::weak_phone_keys_are_refused_with_the_reason(crate::harness::Backend::Sqlite).await;
    }
}

/// Scenarios that need PostgreSQL itself: several nodes on one database, connections cut from
/// outside.
mod postgres_only {
    #[actix_web::test]
    async fn postgres_concurrent_commits_keep_every_lifecycle_and_one_winner() {
        crate::claims::concurrent_commits_keep_every_lifecycle_and_one_winner(crate::harness::Backend::Postgres).await;
    }

    #[actix_web::test]
    async fn postgres_two_nodes_racing_for_the_same_tokens_give_one_winner_and_lose_no_confirm() {
        crate::claims::two_nodes_racing_for_the_same_tokens_give_one_winner_and_lose_no_confirm(
            crate::harness::Backend::Postgres,
        )
        .await;
    }

    #[actix_web::test]
    async fn postgres_a_hung_database_never_applies_a_request_answered_503() {
        crate::hung_database::a_hung_database_never_applies_a_request_answered_503().await;
    }

    #[actix_web::test]
    async fn postgres_a_stale_node_answers_from_the_stored_version() {
        crate::hardening::a_stale_node_answers_from_the_stored_version(crate::harness::Backend::Postgres).await;
    }

    #[actix_web::test]
    async fn postgres_lost_connections_answer_503_and_the_server_recovers() {
        crate::resilience::a_lost_database_connection_answers_503_and_the_server_recovers(
            crate::harness::Backend::Postgres,
        )
        .await;
    }
}
