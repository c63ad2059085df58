//! The writer's HTTP endpoints: it has no API, only `GET /healthz` (the
//! process is up), `GET /readyz` (store, index and queue answer) and
//! `GET /metrics`.

use crate::Writer;
use actix_web::{web, App, HttpResponse, HttpServer};
use pm_http::responses::{probes, readiness};

pub fn serve_health(writer: Writer, listener: std::net::TcpListener) -> std::io::Result<actix_web::dev::Server> {
    let state = web::Data::new(writer);
    Ok(HttpServer::new(move || App::new().app_data(state.clone()).configure(probes(readyz)))
        .disable_signals()
        .listen(listener)?
        .run())
}

async fn readyz(writer: web::Data<Writer>) -> HttpResponse {
    readiness(writer.ready().await.map_err(|error| error.to_string()))
}
