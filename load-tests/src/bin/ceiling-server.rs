//! The ceiling for cashgrid's HTTP path: a trivial actix-web JSON handler, with the same worker
//! count default as cashgrid (one per core). `POST /echo` parses a small JSON body and answers
//! a token-sized JSON object; nothing else happens. Prints `ceiling-server listening on
//! http://ADDR` on stdout once bound, like cashgrid.

use std::io::Write as _;

use actix_web::{post, web, App, HttpResponse, HttpServer};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(about = "Trivial actix-web JSON handler: the HTTP ceiling for the benchmark")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
    /// HTTP worker threads [default: one per core, as cashgrid].
    #[arg(long)]
    workers: Option<usize>,
}

#[post("/echo")]
async fn echo(body: web::Json<Value>) -> HttpResponse {
    let amount = body.get("amount").and_then(Value::as_i64).unwrap_or(0);
    HttpResponse::Ok().json(json!({
        "uuid": "6f1c1d2e-8a7b-4c3d-9e0f-1a2b3c4d5e6f",
        "device_uuid": body.get("device_uuid"),
        "amount": amount,
        "symbol": body.get("symbol"),
        "state": "OPEN",
        "secure_code": "c2VjdXJlLWNvZGUtcGxhY2Vob2xkZXItb2YtYS10b2tlbi1zaXplZC1hbnN3ZXI=",
    }))
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let workers = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from));
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| App::new().service(echo)).workers(workers).bind(&args.bind)?;
        for address in server.addrs() {
            println!("ceiling-server listening on http://{address}");
        }
        std::io::stdout().flush()?;
        server.run().await
    })
}
