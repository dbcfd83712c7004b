//! Pure domain: state machines and value types. No actix, tokio, SQL, clock or randomness here;
//! time comes in as an argument and randomness is decided by the caller.

pub mod ccc;
pub mod clearing;
pub mod device;
pub mod disclosure;
pub mod entity;
pub mod ids;
pub mod ledger;
pub mod params;
pub mod radiocode;
pub mod token;

pub use device::{Device, DeviceType};
pub use entity::{Change, Entity, EntityId};
pub use ids::{CustomerId, Millis};
pub use token::{
    ConfirmState, Token, TokenCommand, TokenEvent, TokenEventKind, TokenRejection, TokenState, TokenType, Transition,
};
