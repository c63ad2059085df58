//! Peer Mountain's gateway (`teleferic`): the public GraphQL API of
//! PROTOCOL.md section 10, served over HTTP. Its one job is to translate:
//! GraphQL requests become calls on the authorizer ([`AuthorizerApi`]) and
//! the reader ([`ReaderApi`]), and their answers and refusals become GraphQL
//! responses, with the contract's code in every error's `extensions.code`.
//!
//! The gateway holds no state and validates no content of its own, beyond
//! the `persona` query's one-argument rule and the request size limit
//! (section 5: 4 MiB by default, answered with HTTP 413 and a
//! `PAYLOAD_TOO_LARGE` GraphQL error). It binds nothing itself: [`Gateway::run`]
//! serves on a listener the caller bound, so tests bind port 0. It counts
//! the envelopes it refuses itself ([`metrics`]).

mod documents;
mod errors;
mod explorer;
mod http;
mod limits;
mod live;
pub mod metrics;
mod scalars;
mod schema;

use actix_web::{web, App, HttpServer};
use pm_http::BodyLimits;
use pm_models::api::{AuthorizerApi, ReaderApi};
use std::net::TcpListener;
use std::sync::Arc;

pub use errors::{graphql_error, CODE_EXTENSION};
pub use http::check_request;
pub use live::{LiveFilter, MessageFeed};
pub use schema::GatewaySchema;

/// Settings of the gateway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewaySettings {
    /// How much of a request body is read, and for how long (section 5).
    pub limits: BodyLimits,
    /// The URL browsers reach the GraphQL endpoint at, when it differs from
    /// this server's `/teleferic` (behind a proxy); GraphiQL sends its
    /// queries there. `None`: the relative `/teleferic`.
    pub public_url: Option<String>,
}

/// The gateway: its schema and the services behind it, ready to serve.
#[derive(Clone)]
pub struct Gateway {
    state: web::Data<http::GatewayState>,
}

impl Gateway {
    pub fn new(authorizer: Arc<dyn AuthorizerApi>, reader: Arc<dyn ReaderApi>, settings: GatewaySettings) -> Self {
        metrics::register();
        Self::build(schema::Services { authorizer, reader, feed: None }, settings)
    }

    /// The same gateway with the live tail (`messageAdded` over WebSocket)
    /// fed by `feed`.
    pub fn with_feed(self, feed: Arc<dyn MessageFeed>) -> Self {
        let state = self.state.into_inner();
        let services = schema::Services { feed: Some(feed), ..state.services.clone() };
        Self::build(services, state.settings.clone())
    }

    fn build(services: schema::Services, settings: GatewaySettings) -> Self {
        let state = http::GatewayState {
            schema: schema::build_schema(services.clone()),
            services,
            settings,
            documents: Default::default(),
        };
        Self { state: web::Data::new(state) }
    }

    /// The schema in GraphQL SDL, as clients see it.
    pub fn sdl(&self) -> String {
        self.state.schema.sdl()
    }

    /// Mounts the gateway's routes (`/teleferic` and `/teleferic/`,
    /// `/healthz`, `/readyz`, `/metrics`, and the explorer page at `/`) on an
    /// actix-web app, for a caller that builds its own `App`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        // The original clients post to `/teleferic/`, with the slash (section 10).
        cfg.app_data(self.state.clone())
            .service(
                web::resource(["/teleferic", "/teleferic/"])
                    .route(web::get().guard(actix_web::guard::Header("upgrade", "websocket")).to(http::graphql_ws))
                    .route(web::get().to(http::graphql_get))
                    .route(web::post().to(http::graphql_post)),
            )
            .configure(pm_http::responses::probes(http::readyz))
            .configure(explorer::configure);
    }

    /// Serves on an already-bound listener. Call it inside a Tokio runtime;
    /// the returned server accepts connections once it is awaited or spawned.
    ///
    /// The server installs no signal handlers: the caller owns shutdown and
    /// stops it through [`actix_web::dev::Server::handle`] (`stop(true)`
    /// finishes in-flight requests first), in whatever order the process
    /// drains its roles.
    pub fn run(self, listener: TcpListener) -> std::io::Result<actix_web::dev::Server> {
        let address = listener.local_addr()?;
        let server = HttpServer::new(move || {
            let gateway = self.clone();
            App::new().configure(move |cfg| gateway.configure(cfg))
        })
        .disable_signals()
        .listen(listener)?
        .run();
        tracing::info!(%address, "gateway listening");
        Ok(server)
    }
}
