//! The command line (clap): one subcommand per job, `--help` on each.

use crate::client::{self, InviteKeySource, MessageArg, PersonaArg};
use crate::settings::{Overrides, Settings};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "pm", version, about = "Peer Mountain persona ledger")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the server commands take their settings from.
#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// TOML configuration file (defaults < file < PM_* environment < flags).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the database file and the node key [default: ./data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct GatewayArg {
    /// GraphQL endpoint of a running gateway.
    #[arg(long, env = "PM_URL", default_value = "http://127.0.0.1:8000/teleferic")]
    pub url: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run every role in one process on the embedded backend.
    Serve {
        #[command(flatten)]
        server: ServerArgs,
        /// Address to listen on [default: 127.0.0.1:8000].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Run the authorizer role alone (internal REST API).
    Authorizer {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Run the reader role alone (internal JSON-RPC API).
    Reader {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Run the writer role alone (queue consumer; /healthz, /readyz, /metrics).
    Writer {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Run the GraphQL gateway alone, in front of an authorizer and a reader.
    Teleferic {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Create storage, the node persona and the genesis persona (idempotent).
    Bootstrap {
        #[command(flatten)]
        server: ServerArgs,
        /// Key file of the genesis persona (private PKCS#8 or public PEM).
        #[arg(long, value_name = "FILE")]
        genesis_key: PathBuf,
        /// Nickname of the genesis persona.
        #[arg(long, value_name = "NAME")]
        nickname: String,
    },
    /// Print the effective configuration as TOML (defaults, file, environment
    /// and flags applied; passwords masked), e.g. to start a config file.
    Config {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Write a new Ed25519 key (PKCS#8 PEM, mode 0600) and print its address.
    Keygen {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print the public key (PEM text) of a private key file, e.g. to hand
    /// the genesis public key to `pm bootstrap` on another machine.
    Pubkey {
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
    /// Print the address of a key.
    Address {
        /// A public key PEM file.
        #[arg(long, value_name = "FILE", conflicts_with = "key", required_unless_present = "key")]
        pubkey: Option<PathBuf>,
        /// A private key file.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
    },
    /// Invite a new persona; prints the invitation hash, invite key and name.
    Invite {
        #[command(flatten)]
        gateway: GatewayArg,
        /// The inviter's private key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The invitation's name, which the invitee must repeat.
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "peer-mountain")]
        service_offering_id: String,
        /// Write the invite key to FILE (mode 0600, never overwritten)
        /// instead of printing it.
        #[arg(long, value_name = "FILE")]
        invite_key_out: Option<PathBuf>,
    },
    /// Register a persona with an invitation.
    Register {
        #[command(flatten)]
        gateway: GatewayArg,
        /// The new persona's private key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        #[arg(long)]
        nickname: String,
        /// The invitation's message hash.
        #[arg(long, value_name = "HASH")]
        invitation: String,
        /// The invite key the inviter gave (base64), or `-` to read it from
        /// standard input. On the command line it shows in `ps` and the
        /// shell history: prefer `--invite-key-file` or `-`.
        #[arg(
            long,
            value_name = "BASE64",
            required_unless_present = "invite_key_file",
            conflicts_with = "invite_key_file"
        )]
        invite_key: Option<String>,
        /// A file holding the invite key (base64), e.g. from `pm invite --invite-key-out`.
        #[arg(long, value_name = "FILE")]
        invite_key_file: Option<PathBuf>,
        /// The invitation name the inviter gave.
        #[arg(long, value_name = "NAME")]
        invite_name: String,
    },
    /// Send an assertion (or attestation) readable by the given personas.
    Assert {
        #[command(flatten)]
        gateway: GatewayArg,
        /// The sender's private key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// A reader's address (repeatable; default: the sender alone).
        #[arg(long = "reader", value_name = "ADDRESS")]
        readers: Vec<String>,
        /// The text asserted.
        #[arg(long)]
        text: String,
        /// A file attached as an object with its container.
        #[arg(long, value_name = "FILE")]
        object_file: Option<PathBuf>,
        /// Send an ATTESTATION instead of an ASSERTION.
        #[arg(long)]
        attestation: bool,
        /// Append the signed envelope to FILE as one JSON line instead of
        /// sending it (for `pm import`). Its timestamps come from the
        /// gateway now, so it must be sent within their freshness window.
        #[arg(long, value_name = "FILE")]
        envelope_out: Option<PathBuf>,
    },
    /// Send the envelopes of a file of JSON lines (one envelope a line, as
    /// `pm assert --envelope-out` writes) with `sendMessages`, BATCH a
    /// request; prints each refusal with its line and a summary, and exits
    /// 1 when any envelope was refused.
    Import {
        #[command(flatten)]
        gateway: GatewayArg,
        /// The file of envelopes.
        file: PathBuf,
        /// Envelopes a request, 1-100.
        #[arg(long, default_value_t = crate::import::MAX_BATCH)]
        batch: usize,
    },
    /// Follow new messages as they become readable (the `messageAdded`
    /// subscription over WebSocket), one line each, until Ctrl-C.
    Tail {
        #[command(flatten)]
        gateway: GatewayArg,
        /// Only the messages this address sent.
        #[arg(long, value_name = "ADDRESS")]
        sender: Option<String>,
        /// Only the messages this address is a reader of.
        #[arg(long, value_name = "ADDRESS")]
        reader: Option<String>,
        /// Only messages of this type (e.g. ASSERTION).
        #[arg(long = "type", value_name = "TYPE")]
        message_type: Option<String>,
        /// Stop after this many messages.
        #[arg(long, value_name = "N")]
        count: Option<usize>,
        /// Print each envelope as a JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Look up a persona by exactly one of address, public key or nickname.
    Persona {
        #[command(flatten)]
        gateway: GatewayArg,
        #[arg(long, group = "by", required = true)]
        address: Option<String>,
        /// Public key: a PEM file's path, or base64 of the PEM text.
        #[arg(long, group = "by")]
        pubkey: Option<String>,
        #[arg(long, group = "by")]
        nickname: Option<String>,
    },
    /// Look up messages by hash, sender, reader or date (YYYY-MM-DD).
    Message {
        #[command(flatten)]
        gateway: GatewayArg,
        #[arg(long, group = "by", required = true)]
        hash: Option<String>,
        #[arg(long, group = "by")]
        sender: Option<String>,
        #[arg(long, group = "by")]
        reader: Option<String>,
        #[arg(long, group = "by")]
        date: Option<String>,
        /// Page size, 1-1000.
        #[arg(long)]
        limit: Option<i64>,
        /// The last messageHash of the previous page.
        #[arg(long)]
        after: Option<String>,
    },
    /// Open a message you are a reader of: recover the message key from
    /// your ACL rule, decrypt the message and its objects, check every hash,
    /// signature and the node's acceptance receipt, then print the body
    /// (checks on stderr, the body on stdout; nothing when a check fails).
    Read {
        #[command(flatten)]
        gateway: GatewayArg,
        /// Your private key file (a reader of the message).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The message's hash.
        #[arg(long, value_name = "HASH")]
        hash: String,
        /// Write each decrypted object to DIR/object-N.
        #[arg(long, value_name = "DIR")]
        objects_dir: Option<PathBuf>,
        /// The node's public key (PEM file) to check against, instead of
        /// the one the gateway serves.
        #[arg(long, value_name = "FILE")]
        node_pubkey: Option<PathBuf>,
    },
    /// Check a stored message for anyone: messageHash, messageSign, each
    /// containerSign, the content of a public message and the node's
    /// acceptance receipt, one line each; exits 1 when any check fails.
    Verify {
        #[command(flatten)]
        gateway: GatewayArg,
        /// The message's hash.
        #[arg(long, value_name = "HASH")]
        hash: String,
        /// The node's public key (PEM file) to check against, instead of
        /// the one the gateway serves.
        #[arg(long, value_name = "FILE")]
        node_pubkey: Option<PathBuf>,
    },
    /// Measure a running node: register personas, send pre-signed private
    /// assertions (accepted/s, latency, stored/s until readable), query them,
    /// and with --ceilings put every figure next to the raw ceilings.
    Bench {
        #[command(flatten)]
        gateway: GatewayArg,
        /// Another gateway of the same node (repeatable): requests go to
        /// every gateway in turn.
        #[arg(long, value_name = "URL")]
        also_url: Vec<String>,
        /// Private key file of the genesis persona, which invites the bench personas.
        #[arg(long, value_name = "FILE")]
        genesis_key: PathBuf,
        /// Personas to register; they send the assertions in turn.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        personas: u32,
        /// Assertions to send.
        #[arg(long, default_value_t = 4000, value_parser = clap::value_parser!(u32).range(1..))]
        messages: u32,
        /// Requests in flight at once (keep-alive connections).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
        concurrency: u32,
        /// Also write every figure to FILE as JSON.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Also measure the ceilings: the gateway's transport, Ed25519 on one
        /// core and each configured backend's raw path (settings as for
        /// `pm serve`: PM_* and the earlier deployment's names).
        #[arg(long)]
        ceilings: bool,
        /// Report the peak RSS of this process (repeatable), e.g. `pm serve`.
        #[arg(long = "watch-pid", value_name = "PID")]
        watch_pids: Vec<u32>,
        /// Report the HBase and Elasticsearch requests each envelope cost,
        /// from this process's `/metrics` (repeatable: every role's URL).
        #[arg(long = "watch-metrics", value_name = "URL")]
        watch_metrics: Vec<String>,
    },
}

fn server_settings(server: &ServerArgs, listen: Option<String>) -> anyhow::Result<Settings> {
    Settings::load(server.config.as_deref(), &Overrides { data_dir: server.data_dir.clone(), listen })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime starts");
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { server, listen } => {
            let settings = server_settings(&server, listen)?;
            crate::telemetry::init(&settings.log, settings.log_format);
            crate::telemetry::init_metrics()?;
            crate::serve::serve(settings).await
        }
        Command::Authorizer { server, listen } => role(&server, listen, crate::roles::authorizer).await,
        Command::Reader { server, listen } => role(&server, listen, crate::roles::reader).await,
        Command::Writer { server, listen } => role(&server, listen, crate::roles::writer).await,
        Command::Teleferic { server, listen } => role(&server, listen, crate::roles::teleferic).await,
        Command::Bootstrap { server, genesis_key, nickname } => {
            let settings = server_settings(&server, None)?;
            crate::telemetry::init("warn", settings.log_format);
            crate::bootstrap::bootstrap(&settings, &genesis_key, &nickname).await
        }
        Command::Config { server, listen } => {
            print!("{}", server_settings(&server, listen)?.to_toml());
            Ok(())
        }
        Command::Keygen { out } => crate::keygen::keygen(&out),
        Command::Pubkey { key } => crate::keygen::pubkey(&key),
        Command::Address { pubkey, key } => {
            crate::keygen::address(&pubkey.or(key).expect("clap requires one of --pubkey and --key"))
        }
        Command::Invite { gateway, key, name, service_offering_id, invite_key_out } => {
            client::invite(&gateway.url, &key, &name, &service_offering_id, invite_key_out.as_deref()).await
        }
        Command::Register { gateway, key, nickname, invitation, invite_key, invite_key_file, invite_name } => {
            let source = match (invite_key, invite_key_file) {
                (_, Some(path)) => InviteKeySource::File(path),
                (Some(text), None) if text == "-" => InviteKeySource::Stdin,
                (Some(text), None) => InviteKeySource::Argument(text),
                (None, None) => unreachable!("clap requires --invite-key or --invite-key-file"),
            };
            client::register(&gateway.url, &key, &nickname, &invitation, source, &invite_name).await
        }
        Command::Assert { gateway, key, readers, text, object_file, attestation, envelope_out } => {
            let to = envelope_out.as_deref();
            client::assert(&gateway.url, &key, &readers, &text, object_file.as_deref(), attestation, to).await
        }
        Command::Import { gateway, file, batch } => crate::import::import(&gateway.url, &file, batch).await,
        Command::Tail { gateway, sender, reader, message_type, count, json } => {
            let filter = crate::tail::TailFilter { sender, reader, message_type };
            crate::tail::tail(&gateway.url, &filter, count, json).await
        }
        Command::Persona { gateway, address, pubkey, nickname } => {
            let arg = match (address, pubkey, nickname) {
                (Some(a), _, _) => PersonaArg::Address(a),
                (_, Some(k), _) => PersonaArg::PublicKey(read_pubkey_arg(&k)?),
                (_, _, Some(n)) => PersonaArg::Nickname(n),
                _ => unreachable!("clap requires one argument of group `by`"),
            };
            client::persona(&gateway.url, arg).await
        }
        Command::Message { gateway, hash, sender, reader, date, limit, after } => {
            let arg = match (hash, sender, reader, date) {
                (Some(h), ..) => MessageArg::Hash(h),
                (_, Some(s), ..) => MessageArg::Sender(s),
                (_, _, Some(r), _) => MessageArg::Reader(r),
                (.., Some(d)) => MessageArg::Date(d),
                _ => unreachable!("clap requires one argument of group `by`"),
            };
            client::message(&gateway.url, arg, limit, after).await
        }
        Command::Read { gateway, key, hash, objects_dir, node_pubkey } => {
            crate::read::read(&gateway.url, &key, &hash, objects_dir.as_deref(), node_pubkey.as_deref()).await
        }
        Command::Verify { gateway, hash, node_pubkey } => {
            crate::read::verify(&gateway.url, &hash, node_pubkey.as_deref()).await
        }
        Command::Bench {
            gateway,
            also_url,
            genesis_key,
            personas,
            messages,
            concurrency,
            json,
            ceilings,
            watch_pids,
            watch_metrics,
        } => {
            let ceilings = if ceilings { Some(Settings::load(None, &Overrides::default())?) } else { None };
            let options = crate::bench::BenchOptions {
                urls: [vec![gateway.url], also_url].concat(),
                genesis_key,
                personas: personas as usize,
                messages: messages as usize,
                concurrency: concurrency as usize,
                ceilings,
                watch_pids,
                watch_metrics,
            };
            let report = crate::bench::run(options).await?;
            print!("{}", crate::bench::report::table(&report));
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&report)?;
                std::fs::write(&path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
            }
            Ok(())
        }
    }
}

async fn role<F, Fut>(server: &ServerArgs, listen: Option<String>, run: F) -> anyhow::Result<()>
where
    F: FnOnce(Settings) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let settings = server_settings(server, listen)?;
    crate::telemetry::init(&settings.log, settings.log_format);
    crate::telemetry::init_metrics()?;
    run(settings).await
}

/// `--pubkey` takes a key file's path or the wire form itself.
fn read_pubkey_arg(value: &str) -> anyhow::Result<String> {
    let path = std::path::Path::new(value);
    if path.is_file() {
        return Ok(crate::bootstrap::read_public_key(path)?.to_wire());
    }
    Ok(value.to_owned())
}
