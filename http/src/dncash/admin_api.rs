//! (being built; see issue 3)

use actix_web::web;

pub fn configure(_config: &mut web::ServiceConfig) {}
