//! The trigger registry's rules: single use, expiry, bounded waits, replaced polls, pushes.

use std::time::Duration;

use actix::Actor as _;

use super::*;

fn token() -> Token {
    crate::domain::token::issued_for_tests(1_000)
}

fn owner() -> TriggerOwner {
    TriggerOwner { cash_device: Uuid::from_bytes([7; 16]), cash_customer: 3 }
}

fn start(wait_max: Duration) -> Addr<TriggerRegistry> {
    TriggerRegistry::new(&TriggerConfig { wait_max, fixed_codes: false }, None).start()
}

async fn create(registry: &Addr<TriggerRegistry>, code: &str, expires_in: Duration) {
    let created = registry.send(Create { code: code.into(), owner: owner(), expires_in }).await;
    assert_eq!(created, Ok(Ok(())));
}

/// A poll's outcome, once answered.
async fn wait(
    registry: &Addr<TriggerRegistry>,
    code: &str,
) -> impl std::future::Future<Output = Result<WaitOutcome, oneshot::error::RecvError>> {
    let receiver = match registry.send(Wait { code: code.into(), customer: owner().cash_customer }).await {
        Ok(Ok(receiver)) => receiver,
        other => panic!("wait refused: {other:?}"),
    };
    async move { receiver.await.map(|answer| answer.outcome) }
}

fn complete(registry: &Addr<TriggerRegistry>, code: &str, token: Token) -> oneshot::Receiver<()> {
    let (handover, handed_over) = Handover::new();
    registry.do_send(Complete { code: code.into(), owner: owner(), token, handover });
    handed_over
}

async fn reserve(registry: &Addr<TriggerRegistry>, code: &str) -> Result<TriggerOwner, TriggerRefusal> {
    match registry.send(Reserve { code: code.into() }).await {
        Ok(answer) => answer,
        Err(error) => panic!("registry gone: {error}"),
    }
}

#[actix::test]
async fn a_used_trigger_answers_its_poll_and_cannot_be_used_again() {
    let registry = start(Duration::from_secs(60));
    create(&registry, "t1", Duration::from_secs(60)).await;
    let poll = wait(&registry, "t1").await;
    assert_eq!(reserve(&registry, "t1").await, Ok(owner()));
    let locked = token();
    complete(&registry, "t1", locked.clone());
    assert_eq!(poll.await, Ok(WaitOutcome::Locked(Box::new(locked))));
    assert_eq!(reserve(&registry, "t1").await, Err(TriggerRefusal::NotFound));
    let again =
        registry.send(Wait { code: "t1".into(), customer: owner().cash_customer }).await.map(|answer| answer.err());
    assert_eq!(again, Ok(Some(TriggerRefusal::NotFound)));
}

#[actix::test]
async fn the_handover_reaches_the_poll_with_the_token_and_ends_when_the_poll_lets_go() {
    let registry = start(Duration::from_secs(60));
    create(&registry, "t7", Duration::from_secs(60)).await;
    let receiver = match registry.send(Wait { code: "t7".into(), customer: owner().cash_customer }).await {
        Ok(Ok(receiver)) => receiver,
        other => panic!("wait refused: {other:?}"),
    };
    let mut handed_over = complete(&registry, "t7", token());
    let answer = receiver.await.unwrap_or_else(|error| panic!("no answer: {error}"));
    assert!(matches!(answer.outcome, WaitOutcome::Locked(_)));
    assert!(
        handed_over.try_recv().is_err_and(|error| error == oneshot::error::TryRecvError::Empty),
        "the poll still holds it"
    );
    drop(answer);
    assert!(handed_over.await.is_err(), "dropped with the answer: the phone may go on");
    // Nobody polls: the handover ends at once.
    create(&registry, "t8", Duration::from_secs(60)).await;
    let unheard = tokio::time::timeout(Duration::from_secs(5), complete(&registry, "t8", token())).await;
    assert!(unheard.is_ok());
}

#[actix::test]
async fn a_reserved_trigger_is_not_handed_out_twice_until_released() {
    let registry = start(Duration::from_secs(60));
    create(&registry, "t2", Duration::from_secs(60)).await;
    assert!(reserve(&registry, "t2").await.is_ok());
    assert_eq!(reserve(&registry, "t2").await, Err(TriggerRefusal::NotFound));
    registry.do_send(Release { code: "t2".into() });
    assert!(reserve(&registry, "t2").await.is_ok(), "a failed claim leaves the trigger alive");
}

#[actix::test]
async fn a_second_poll_replaces_the_first_which_gets_an_answer() {
    let registry = start(Duration::from_secs(60));
    create(&registry, "t3", Duration::from_secs(60)).await;
    let first = wait(&registry, "t3").await;
    let _second = wait(&registry, "t3").await;
    assert_eq!(first.await, Ok(WaitOutcome::Replaced));
}

#[actix::test]
async fn only_the_trigger_owners_customer_may_wait_and_a_foreign_poll_displaces_nothing() {
    let registry = start(Duration::from_secs(60));
    create(&registry, "t6", Duration::from_secs(60)).await;
    let own = wait(&registry, "t6").await;
    let foreign = registry.send(Wait { code: "t6".into(), customer: owner().cash_customer + 1 }).await;
    assert_eq!(foreign.map(|answer| answer.err()), Ok(Some(TriggerRefusal::NotFound)), "as for an unknown code");
    assert_eq!(reserve(&registry, "t6").await, Ok(owner()));
    let locked = token();
    complete(&registry, "t6", locked.clone());
    assert_eq!(own.await, Ok(WaitOutcome::Locked(Box::new(locked))), "the owner's poll was never replaced");
}

#[actix::test]
async fn an_expired_trigger_answers_its_poll_and_refuses_use() {
    let registry = start(Duration::from_secs(60));
    create(&registry, "t4", Duration::from_millis(100)).await;
    let poll = wait(&registry, "t4").await;
    let outcome = tokio::time::timeout(Duration::from_secs(5), poll).await;
    assert_eq!(outcome.ok(), Some(Ok(WaitOutcome::Expired)));
    assert_eq!(reserve(&registry, "t4").await, Err(TriggerRefusal::NotFound));
}

#[actix::test]
async fn a_poll_is_answered_when_it_has_waited_long_enough_and_the_trigger_lives_on() {
    let registry = start(Duration::from_millis(100));
    create(&registry, "t5", Duration::from_secs(60)).await;
    let poll = wait(&registry, "t5").await;
    let outcome = tokio::time::timeout(Duration::from_secs(5), poll).await;
    assert_eq!(outcome.ok(), Some(Ok(WaitOutcome::TimedOut)));
    assert!(reserve(&registry, "t5").await.is_ok());
}

#[actix::test]
async fn unknown_codes_are_not_found() {
    let registry = start(Duration::from_secs(60));
    assert_eq!(reserve(&registry, "nope").await, Err(TriggerRefusal::NotFound));
    let waited =
        registry.send(Wait { code: "nope".into(), customer: owner().cash_customer }).await.map(|answer| answer.err());
    assert_eq!(waited, Ok(Some(TriggerRefusal::NotFound)));
}

#[actix::test]
async fn device_sockets_get_pushes_and_slow_ones_are_dropped() {
    let registry = start(Duration::from_secs(60));
    let device = owner().cash_device;
    let mut fast = match registry.send(Subscribe { cash_device: device }).await {
        Ok(Ok(subscription)) => subscription,
        other => panic!("subscribe refused: {other:?}"),
    };
    let mut slow = match registry.send(Subscribe { cash_device: device }).await {
        Ok(Ok(subscription)) => subscription,
        other => panic!("subscribe refused: {other:?}"),
    };
    for round in 0..=SOCKET_BUFFER {
        let code = format!("code-{round}");
        create(&registry, &code, Duration::from_secs(60)).await;
        complete(&registry, &code, token());
        // The fast socket reads every push as it comes.
        let push = tokio::time::timeout(Duration::from_secs(5), fast.pushes.recv()).await;
        assert_eq!(push.ok().flatten().map(|push| push.code), Some(code));
    }
    // The slow socket never read: it holds a full buffer and was then dropped.
    let mut queued = 0;
    while slow.pushes.recv().await.is_some() {
        queued += 1;
    }
    assert_eq!(queued, SOCKET_BUFFER);
    registry.do_send(Unsubscribe { cash_device: device, id: fast.id });
}

#[actix::test]
async fn sockets_per_device_are_bounded() {
    let registry = start(Duration::from_secs(60));
    let device = owner().cash_device;
    let mut open = Vec::new();
    for _ in 0..SOCKETS_PER_DEVICE_MAX {
        match registry.send(Subscribe { cash_device: device }).await {
            Ok(Ok(subscription)) => open.push(subscription),
            other => panic!("subscribe refused: {other:?}"),
        }
    }
    let refused = registry.send(Subscribe { cash_device: device }).await.map(|answer| answer.err());
    assert_eq!(refused, Ok(Some(TriggerRefusal::Full)));
    // A closed socket frees its place.
    let closed = open.pop().map(|subscription| subscription.id);
    if let Some(id) = closed {
        registry.do_send(Unsubscribe { cash_device: device, id });
    }
    assert!(matches!(registry.send(Subscribe { cash_device: device }).await, Ok(Ok(_))));
}
