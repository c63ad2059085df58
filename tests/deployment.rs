//! The container files against the code: `Dockerfile`,
//! `docker-compose-development.yml` and `docker-compose.yml` (a swarm stack)
//! must start real `pm` subcommands with flags they accept, set only
//! environment variables the configuration reads (src/settings.rs: the earlier
//! deployment's names, or `PM_…` names of real settings keys), listen where
//! they are reached, and (in the stack) hand the authorizers the node key as a
//! secret and reach RabbitMQ and Elasticsearch through TCP proxy services.
//! Where a `docker` CLI is present, docker itself validates the files too.

use serde_yaml::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

const DEVELOPMENT: &str = "docker-compose-development.yml";
const STACK: &str = "docker-compose.yml";
const FILES: [&str; 2] = [DEVELOPMENT, STACK];

/// The `pm` subcommands a container may run, one service each.
const ROLES: [&str; 5] = ["teleferic", "authorizer", "reader", "writer", "bootstrap"];

/// The earlier deployment's environment names (`legacy_environment`).
const LEGACY_NAMES: [&str; 9] = [
    "BROKER_URL",
    "HBASE_HOSTNAME",
    "HBASE_PORT",
    "ES_URL",
    "READER_HOSTNAME",
    "READER_PORT",
    "AUTHORIZER_ENDPOINT_HOSTNAME",
    "AUTHORIZER_ENDPOINT_PORT",
    "PORT",
];

/// Top-level settings without a default (`Option` fields of `Settings`).
const OPTIONAL_KEYS: [&str; 2] = ["node_key", "public_url"];

/// The port each long-running role listens on.
const ROLE_PORTS: [(&str, u16); 4] = [("teleferic", 8000), ("authorizer", 8001), ("reader", 8002), ("writer", 8003)];

/// What each role connects to, so what it must be told (src/roles.rs:
/// `Backends::connect` needs, `RemoteReader`/`RemoteAuthorizer`).
const ROLE_NEEDS: [(&str, &[&str]); 5] = [
    (
        "teleferic",
        &["PORT", "AUTHORIZER_ENDPOINT_HOSTNAME", "AUTHORIZER_ENDPOINT_PORT", "READER_HOSTNAME", "READER_PORT"],
    ),
    (
        "authorizer",
        &["PORT", "BROKER_URL", "HBASE_HOSTNAME", "HBASE_PORT", "READER_HOSTNAME", "READER_PORT", "PM_NODE_KEY"],
    ),
    ("reader", &["PORT", "HBASE_HOSTNAME", "HBASE_PORT", "ES_URL"]),
    ("writer", &["PORT", "BROKER_URL", "HBASE_HOSTNAME", "HBASE_PORT", "ES_URL"]),
    ("bootstrap", &["BROKER_URL", "HBASE_HOSTNAME", "HBASE_PORT", "ES_URL", "PM_NODE_KEY"]),
];

const PROXY_IMAGES: [&str; 2] = ["tecnativa/tcp-proxy", "haproxy"];

// ---------------------------------------------------------------- helpers

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Compose variable interpolation, as far as these files use it:
/// `${NAME:-default}` becomes the default, any other `${…}` a placeholder.
fn interpolate(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').expect("an interpolation `${` is closed by `}`");
        let expression = &rest[start + 2..end];
        match expression.split_once(":-") {
            Some((_, default)) => out.push_str(default),
            None => out.push_str("interpolated"),
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// A compose file, interpolated, with its YAML merge keys (`<<`) applied.
fn compose(file: &str) -> Value {
    let mut document: Value =
        serde_yaml::from_str(&interpolate(&read(file))).unwrap_or_else(|e| panic!("{file} is not YAML: {e}"));
    document.apply_merge().unwrap_or_else(|e| panic!("{file}: bad merge key: {e}"));
    document
}

fn services(document: &Value) -> BTreeMap<String, Value> {
    document["services"]
        .as_mapping()
        .expect("a `services` mapping")
        .iter()
        .map(|(name, service)| (name.as_str().expect("service names are strings").to_owned(), service.clone()))
        .collect()
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `command` or `entrypoint`, in list or string form.
fn words(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Sequence(items) => items.iter().map(|w| scalar(w).expect("command words are scalars")).collect(),
        other => panic!("not a command: {other:?}"),
    }
}

/// `environment`, in mapping or `NAME=value` list form.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Null => BTreeMap::new(),
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| (k.as_str().expect("variable names are strings").to_owned(), scalar(v).unwrap_or_default()))
            .collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|item| {
                let item = item.as_str().expect("environment entries are strings");
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        other => panic!("not an environment: {other:?}"),
    }
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items.iter().filter_map(scalar).collect(),
        Value::Mapping(map) => map.keys().filter_map(scalar).collect(),
        other => vec![scalar(other).expect("a scalar")],
    }
}

fn networks(service: &Value) -> BTreeSet<String> {
    match &service["networks"] {
        Value::Null => ["default".to_owned()].into(),
        other => strings(other).into_iter().collect(),
    }
}

fn image(service: &Value) -> String {
    service["image"].as_str().unwrap_or_default().to_owned()
}

/// Services that run the `pm` image (built here, or its published name).
fn role_services(file: &str, document: &Value) -> BTreeMap<String, Value> {
    let roles: BTreeMap<String, Value> = services(document)
        .into_iter()
        .filter(|(_, s)| !s["build"].is_null() || image(s).contains("peer-mountain/pm"))
        .collect();
    assert_eq!(
        roles.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        ROLES.into_iter().collect::<BTreeSet<_>>(),
        "{file}: the services running the pm image are exactly one per role"
    );
    roles
}

/// Container ports a service publishes (`ports`, short or long form).
fn container_ports(service: &Value) -> Vec<u16> {
    let Some(ports) = service["ports"].as_sequence() else { return Vec::new() };
    ports
        .iter()
        .map(|port| match port {
            Value::Mapping(_) => scalar(&port["target"]).expect("a long-form port has a target").parse().unwrap(),
            other => {
                let short = scalar(other).expect("a short-form port");
                let container = short.rsplit(':').next().unwrap();
                container.split('/').next().unwrap().parse().unwrap_or_else(|_| panic!("bad port {short:?}"))
            }
        })
        .collect()
}

/// The port a `http://127.0.0.1:PORT/healthz` health check probes, if any.
fn probed_port(service: &Value) -> Option<u16> {
    let test = words(&service["healthcheck"]["test"]).join(" ");
    let after = test.split("http://127.0.0.1:").nth(1)?;
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    Some(digits.parse().expect("a probed port is a number"))
}

/// Host and port of `scheme://[user[:password]@]host[:port][/…]`.
fn host_port(url: &str) -> (String, Option<u16>) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    match host_port.rsplit_once(':') {
        Some((host, port)) => (host.to_owned(), Some(port.parse().expect("a URL port is a number"))),
        None => (host_port.to_owned(), None),
    }
}

/// `pm <subcommand> --help`, run once per subcommand.
fn help(subcommand: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(text) = cache.lock().unwrap().get(subcommand) {
        return text.clone();
    }
    let output = Command::new(env!("CARGO_BIN_EXE_pm")).args([subcommand, "--help"]).output().expect("pm runs");
    assert!(output.status.success(), "`pm {subcommand} --help` fails: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("help is UTF-8");
    cache.lock().unwrap().insert(subcommand.to_owned(), text.clone());
    text
}

/// `flag` appears in the help as a whole option name.
fn accepts(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        let next = help[at + flag.len()..].chars().next();
        let before = help[..at].chars().next_back();
        !matches!(next, Some(c) if c.is_ascii_alphanumeric() || c == '-')
            && !matches!(before, Some(c) if c.is_ascii_alphanumeric() || c == '-')
    })
}

/// The options `pm <subcommand>` requires: those its usage line names outside `[OPTIONS]`.
fn required_flags(subcommand: &str) -> Vec<String> {
    let help = help(subcommand);
    let usage = help.lines().find(|l| l.starts_with("Usage:")).expect("help has a usage line");
    usage.split_whitespace().filter(|w| w.starts_with("--")).map(str::to_owned).collect()
}

/// The default settings as TOML, as `pm config` prints them.
fn defaults_toml() -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pm"));
    // The defaults alone: no setting from this process's environment.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("PM_") || LEGACY_NAMES.contains(&name.as_str()) {
            command.env_remove(name);
        }
    }
    let output = command.arg("config").output().expect("pm config runs");
    assert!(output.status.success(), "pm config failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("pm config prints UTF-8")
}

/// Every settings key, dotted (`authorizer.max_age_secs`): the defaults'
/// keys and the optional top-level ones.
fn settings_keys() -> BTreeSet<String> {
    fn flatten(prefix: &str, value: &serde_json::Value, keys: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    flatten(&key, v, keys);
                }
            }
            _ => {
                keys.insert(prefix.to_owned());
            }
        }
    }
    let defaults: serde_json::Value = config::Config::builder()
        .add_source(config::File::from_str(&defaults_toml(), config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .expect("DEFAULTS is TOML");
    let mut keys = BTreeSet::new();
    flatten("", &defaults, &mut keys);
    assert!(keys.contains("authorizer.max_age_secs") && keys.contains("listen"), "DEFAULTS read wrongly: {keys:?}");
    keys.extend(OPTIONAL_KEYS.map(str::to_owned));
    keys
}

/// The settings key a `PM_…` variable sets (prefix `PM_`, `__` between sections).
fn settings_key(variable: &str) -> Option<String> {
    let rest = variable.strip_prefix("PM_")?;
    Some(rest.to_lowercase().split("__").collect::<Vec<_>>().join("."))
}

// ------------------------------------------------------------------ tests

#[test]
fn every_role_service_runs_its_own_pm_subcommand_with_flags_that_subcommand_accepts() {
    for file in FILES {
        for (name, service) in role_services(file, &compose(file)) {
            let entrypoint = words(&service["entrypoint"]);
            if !entrypoint.is_empty() {
                // Development: `cargo run … --bin pm --` in front of the subcommand.
                assert!(
                    entrypoint.starts_with(&["cargo".into(), "run".into()])
                        && entrypoint.windows(2).any(|w| w == ["--bin", "pm"])
                        && entrypoint.last().map(String::as_str) == Some("--"),
                    "{file}: {name}'s entrypoint must run the pm binary, not {entrypoint:?}"
                );
            }
            let command = words(&service["command"]);
            let subcommand = command.first().unwrap_or_else(|| panic!("{file}: {name} has no command"));
            assert!(ROLES.contains(&subcommand.as_str()), "{file}: {name} runs `{subcommand}`, not a pm role");
            assert_eq!(subcommand, &name, "{file}: service {name} runs `pm {subcommand}`");
            let help = help(subcommand);
            for word in &command[1..] {
                if word.starts_with("--") {
                    let flag = word.split('=').next().unwrap();
                    assert!(accepts(&help, flag), "{file}: `pm {subcommand}` has no flag {flag}:\n{help}");
                }
            }
            for flag in required_flags(subcommand) {
                assert!(
                    command.iter().any(|w| w == &flag || w.starts_with(&format!("{flag}="))),
                    "{file}: {name} lacks the required flag {flag}"
                );
            }
            // `--listen` would win over PORT; the files use PORT alone.
            assert!(!command.iter().any(|w| w.starts_with("--listen")), "{file}: {name} sets --listen; use PORT");
        }
    }
}

#[test]
fn every_environment_variable_a_role_service_sets_is_one_the_configuration_reads() {
    let keys = settings_keys();
    for file in FILES {
        for (name, service) in role_services(file, &compose(file)) {
            let env = environment(&service);
            let mut pm_vars = config::Map::new();
            for (variable, value) in &env {
                if LEGACY_NAMES.contains(&variable.as_str()) {
                    continue;
                }
                let key = settings_key(variable).unwrap_or_else(|| {
                    panic!("{file}: {name} sets {variable}, which is neither an earlier deployment name nor PM_…")
                });
                assert!(keys.contains(&key), "{file}: {name} sets {variable}, but there is no setting `{key}`");
                pm_vars.insert(variable.clone(), value.clone());
            }
            // The PM_ values must also make valid settings over the defaults.
            let settings = config::Config::builder()
                .add_source(config::File::from_str(&defaults_toml(), config::FileFormat::Toml))
                .add_source(
                    config::Environment::with_prefix("PM").prefix_separator("_").separator("__").source(Some(pm_vars)),
                )
                .build()
                .and_then(config::Config::try_deserialize::<pm::settings::Settings>);
            if let Err(e) = settings {
                panic!("{file}: {name}'s PM_ variables are not valid settings: {e}");
            }
            // And the earlier deployment's names must carry what the code expects.
            for port in ["HBASE_PORT", "READER_PORT", "AUTHORIZER_ENDPOINT_PORT", "PORT"] {
                if let Some(value) = env.get(port) {
                    assert!(value.parse::<u16>().is_ok(), "{file}: {name}: {port}={value:?} is not a port");
                }
            }
            if let Some(url) = env.get("BROKER_URL") {
                assert!(url.starts_with("amqp://") || url.starts_with("amqps://"), "{file}: {name}: BROKER_URL={url}");
            }
            if let Some(url) = env.get("ES_URL") {
                assert!(url.starts_with("http://") || url.starts_with("https://"), "{file}: {name}: ES_URL={url}");
            }
            let needs = ROLE_NEEDS.iter().find(|(role, _)| *role == name).unwrap().1;
            for variable in needs {
                assert!(env.contains_key(*variable), "{file}: {name} connects using {variable}, which it is not given");
            }
        }
    }
}

#[test]
fn each_role_is_published_and_probed_on_the_port_its_port_variable_names() {
    for file in FILES {
        for (name, service) in role_services(file, &compose(file)) {
            let env = environment(&service);
            let expected = ROLE_PORTS.iter().find(|(role, _)| *role == name).map(|(_, port)| *port);
            let port = env.get("PORT").map(|p| p.parse::<u16>().expect("PORT is a port"));
            assert_eq!(port, expected, "{file}: {name}'s PORT");
            for published in container_ports(&service) {
                assert_eq!(Some(published), port, "{file}: {name} publishes container port {published}");
            }
            if let Some(probed) = probed_port(&service) {
                assert_eq!(Some(probed), port, "{file}: {name}'s health check probes port {probed}");
            }
        }
    }
    let stack = services(&compose(STACK));
    assert_eq!(container_ports(&stack["teleferic"]), [8000], "the stack publishes the gateway on 8000");
    for role in ["authorizer", "reader", "writer", "bootstrap"] {
        assert!(container_ports(&stack[role]).is_empty(), "the stack keeps the internal {role} unpublished");
    }
}

#[test]
fn the_roles_find_each_other_and_hbase_by_service_name_and_port() {
    for file in FILES {
        let document = compose(file);
        let all = services(&document);
        let roles = role_services(file, &document);
        let port_of = |role: &str| environment(&roles[role]).get("PORT").cloned();
        for (name, service) in &roles {
            let env = environment(service);
            for (host, port, target) in [
                ("READER_HOSTNAME", "READER_PORT", "reader"),
                ("AUTHORIZER_ENDPOINT_HOSTNAME", "AUTHORIZER_ENDPOINT_PORT", "authorizer"),
            ] {
                if let Some(hostname) = env.get(host) {
                    assert_eq!(hostname, target, "{file}: {name}: {host} names the {target} service");
                    assert_eq!(
                        env.get(port),
                        port_of(target).as_ref(),
                        "{file}: {name}: {port} is the {target}'s PORT"
                    );
                    let shared = networks(service).intersection(&networks(&roles[target])).count();
                    assert!(shared > 0, "{file}: {name} and {target} share no network");
                }
            }
            if let Some(hostname) = env.get("HBASE_HOSTNAME") {
                let hbase = all.get(hostname).unwrap_or_else(|| panic!("{file}: no service {hostname}"));
                assert!(image(hbase).contains("hbase"), "{file}: {hostname} is not an HBase image");
                assert_eq!(env.get("HBASE_PORT").map(String::as_str), Some("9090"), "{file}: {name}: Thrift v1 port");
                assert!(
                    networks(service).intersection(&networks(hbase)).count() > 0,
                    "{file}: {name} cannot reach HBase"
                );
            }
        }
    }
}

/// The service a role's URL variable points at, and the server behind it.
fn server_behind(file: &str, all: &BTreeMap<String, Value>, role: &str, url: &str) -> (String, String) {
    let (host, port) = host_port(url);
    let front = all.get(&host).unwrap_or_else(|| panic!("{file}: {role} connects to {host}, which is no service"));
    if !PROXY_IMAGES.iter().any(|p| image(front).starts_with(p)) {
        return (host.clone(), host);
    }
    let env = environment(front);
    let listen = env.get("LISTEN").expect("a tcp-proxy has LISTEN");
    let talk = env.get("TALK").expect("a tcp-proxy has TALK");
    let pairs: Vec<(&str, &str)> = listen.split_whitespace().zip(talk.split_whitespace()).collect();
    let port = port.expect("a URL through a proxy names its port").to_string();
    let (_, target) = pairs
        .iter()
        .find(|(l, _)| l.rsplit(':').next() == Some(port.as_str()))
        .unwrap_or_else(|| panic!("{file}: proxy {host} does not listen on {port}"));
    (host, target.rsplit_once(':').expect("TALK is host:port").0.to_owned())
}

#[test]
fn in_the_stack_rabbitmq_and_elasticsearch_are_reached_through_tcp_proxy_services() {
    let document = compose(STACK);
    let all = services(&document);
    for (name, service) in role_services(STACK, &document) {
        let env = environment(&service);
        for (variable, server_image) in [("BROKER_URL", "rabbitmq"), ("ES_URL", "elasticsearch")] {
            let Some(url) = env.get(variable) else { continue };
            let (front, server) = server_behind(STACK, &all, &name, url);
            assert_ne!(front, server, "{name}: {variable} must point at a TCP proxy service, not at {server}");
            assert!(image(&all[&server]).contains(server_image), "{name}: the proxy {front} talks to {server}");
            assert!(
                networks(&service).is_disjoint(&networks(&all[&server])),
                "{name} shares a network with {server}: only its proxy should reach it"
            );
            assert!(
                !networks(&service).is_disjoint(&networks(&all[&front])),
                "{name} shares no network with the proxy {front}"
            );
            let proxy = &all[&front]["deploy"];
            assert!(!proxy["restart_policy"].is_null(), "the proxy {front} has a restart policy");
        }
    }
    let development = services(&compose(DEVELOPMENT));
    let env = environment(&development["writer"]);
    assert_eq!(env["BROKER_URL"], "amqp://guest:guest@rabbitmq:5672/%2f");
    assert_eq!(env["ES_URL"], "http://elasticsearch:9200");
}

/// The in-container path of a swarm secret, if `service` is given `secret`.
fn secret_path(service: &Value, secret: &str) -> Option<String> {
    service["secrets"].as_sequence()?.iter().find_map(|entry| match entry {
        Value::String(source) if source == secret => Some(format!("/run/secrets/{source}")),
        Value::Mapping(_) if entry["source"].as_str() == Some(secret) => {
            let target = entry["target"].as_str().unwrap_or(secret);
            Some(if target.starts_with('/') { target.to_owned() } else { format!("/run/secrets/{target}") })
        }
        _ => None,
    })
}

#[test]
fn in_the_stack_the_authorizers_and_bootstrap_read_one_node_key_from_a_swarm_secret() {
    let document = compose(STACK);
    assert_eq!(document["secrets"]["node_key"]["external"], Value::Bool(true), "node_key is an external secret");
    let all = services(&document);
    for role in ["authorizer", "bootstrap"] {
        let path = secret_path(&all[role], "node_key").unwrap_or_else(|| panic!("{role} is not given node_key"));
        assert_eq!(path, "/run/secrets/node_key");
        assert_eq!(environment(&all[role]).get("PM_NODE_KEY"), Some(&path), "{role}'s node_key setting");
        assert!(all[role]["volumes"].is_null(), "{role} keeps no key in a volume");
    }
    for role in ["teleferic", "reader", "writer"] {
        assert!(secret_path(&all[role], "node_key").is_none(), "{role} does not need the node key");
    }
}

#[test]
fn in_the_stack_every_role_has_replicas_placement_resources_and_a_restart_policy() {
    let document = compose(STACK);
    assert_eq!(document["version"].as_str(), Some("3.8"));
    for (name, service) in role_services(STACK, &document) {
        let deploy = &service["deploy"];
        let restart = &deploy["restart_policy"];
        assert_eq!(restart["condition"].as_str(), Some("on-failure"), "{name}'s restart condition");
        assert!(!restart["delay"].is_null() && restart["max_attempts"].as_u64().is_some(), "{name}'s restart policy");
        for kind in ["limits", "reservations"] {
            let resources = &deploy["resources"][kind];
            assert!(!resources["cpus"].is_null() && !resources["memory"].is_null(), "{name}'s resource {kind}");
        }
        assert!(!strings(&deploy["placement"]["constraints"]).is_empty(), "{name} has placement constraints");
        let replicas = deploy["replicas"].as_u64().unwrap_or(1);
        if name == "bootstrap" {
            assert_eq!(replicas, 1, "bootstrap runs once");
        } else {
            assert_eq!(replicas, 2, "{name}'s replicas");
            assert!(!deploy["update_config"]["order"].is_null(), "{name} has an update_config");
        }
        let on_public = networks(&service).contains("public");
        assert_eq!(on_public, name == "teleferic", "{name}: only the gateway is on the public network");
    }
    for stateful in ["rabbitmq", "elasticsearch", "hbase"] {
        let service = &services(&document)[stateful];
        let constraints = strings(&service["deploy"]["placement"]["constraints"]);
        assert!(constraints.iter().any(|c| c.contains("node.labels.pm.storage")), "{stateful} runs on storage nodes");
        assert!(!service["volumes"].is_null(), "{stateful} keeps its data in a named volume");
    }
    let backend = &document["networks"]["backend"];
    assert_eq!((backend["driver"].as_str(), backend["internal"].as_bool()), (Some("overlay"), Some(true)));
    assert_eq!(document["networks"]["public"]["driver"].as_str(), Some("overlay"));
}

#[test]
fn in_development_the_roles_run_from_the_mounted_source_and_share_the_bootstrapped_node_key() {
    let document = compose(DEVELOPMENT);
    let declared = strings(&document["volumes"]);
    for (name, service) in role_services(DEVELOPMENT, &document) {
        assert_eq!(service["build"]["target"].as_str(), Some("builder"), "{name} builds the builder stage");
        let volumes = strings(&service["volumes"]);
        assert!(volumes.iter().any(|v| v == "./:/src" || v == ".:/src"), "{name} mounts the source at /src");
        assert_eq!(service["working_dir"].as_str(), Some("/src"), "{name} works in /src");
        for volume in &volumes {
            let source = volume.split(':').next().unwrap();
            if !source.starts_with('.') && !source.starts_with('/') {
                assert!(declared.iter().any(|d| d == source), "{name} mounts undeclared volume {source}");
            }
        }
    }
    let all = services(&document);
    for role in ["bootstrap", "authorizer"] {
        let volumes = strings(&all[role]["volumes"]);
        assert!(volumes.iter().any(|v| v.starts_with("node-key:/data")), "{role} mounts node-key at /data");
        assert_eq!(environment(&all[role])["PM_NODE_KEY"], "/data/node.key");
    }
    let command = words(&all["bootstrap"]["command"]);
    let genesis = &command[command.iter().position(|w| w == "--genesis-key").unwrap() + 1];
    let mounted = strings(&all["bootstrap"]["volumes"]).iter().any(|v| {
        let target = v.split(':').nth(1).unwrap_or_default();
        genesis.starts_with(&format!("{target}/"))
    });
    assert!(mounted, "bootstrap's genesis key {genesis} is in a mounted directory");
    for role in ["authorizer", "reader", "writer"] {
        let condition = &all[role]["depends_on"]["bootstrap"]["condition"];
        assert_eq!(condition.as_str(), Some("service_completed_successfully"), "{role} waits for bootstrap");
    }
    let es = environment(&all["elasticsearch"]);
    assert_eq!(es["discovery.type"], "single-node");
    assert_eq!(es["xpack.security.enabled"], "false");
}

/// The arguments of a Dockerfile instruction (`FROM`, `USER`, …), one per
/// line that starts with it, with the `ARG NAME=default` values declared
/// before the first `FROM` substituted for `${NAME}`.
fn instructions(dockerfile: &str, name: &str) -> Vec<String> {
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    let mut defaults = Vec::new();
    for line in lines.iter().take_while(|l| !l.starts_with("FROM ")) {
        if let Some((arg, default)) = line.strip_prefix("ARG ").and_then(|a| a.split_once('=')) {
            defaults.push((format!("${{{arg}}}"), default.to_owned()));
        }
    }
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(name).filter(|r| r.starts_with(' ')).map(str::trim))
        .map(|args| defaults.iter().fold(args.to_owned(), |text, (arg, default)| text.replace(arg, default)))
        .collect()
}

#[test]
fn the_dockerfile_builds_pm_locked_and_runs_it_unprivileged_with_flags_serve_accepts() {
    let dockerfile = read("Dockerfile");
    let instruction = |name: &str| instructions(&dockerfile, name);
    let froms = instruction("FROM");
    assert!(froms.iter().any(|f| f.starts_with("rust:1-bookworm") && f.ends_with("AS builder")), "{froms:?}");
    assert!(froms.last().unwrap().starts_with("debian:bookworm-slim"), "{froms:?}");
    assert!(dockerfile.contains("FROM ${RUST_IMAGE} AS builder"), "the builder's base is the RUST_IMAGE argument");
    assert!(dockerfile.contains("cargo build --release --locked --bin pm"));
    // The manifests come in before the sources, so dependencies are cached.
    let manifests = dockerfile.find("COPY Cargo.toml Cargo.lock").expect("the manifests are copied alone");
    assert!(manifests < dockerfile.find("COPY . .").expect("then the sources"));
    // Every workspace member: cargo cannot load the workspace without its
    // manifest, and the placeholder build needs a placeholder source for it.
    let workspace: toml::Table = read("Cargo.toml").parse().expect("Cargo.toml is TOML");
    let members = workspace["workspace"]["members"].as_array().expect("workspace members");
    let placeholders = dockerfile.lines().find(|l| l.contains("for crate in")).expect("the placeholder loop");
    for member in members.iter().map(|m| m.as_str().expect("a member is a path")) {
        assert!(
            dockerfile.contains(&format!("COPY {member}/Cargo.toml {member}/")),
            "{member}'s manifest is copied early"
        );
        assert!(
            placeholders.split_whitespace().any(|w| w.trim_end_matches(';') == member),
            "{member} gets a placeholder source"
        );
    }
    assert!(dockerfile.contains("--uid 10001"), "the pm user has uid 10001");
    assert_eq!(instruction("USER"), ["pm:pm"]);
    assert_eq!(instruction("EXPOSE"), ["8000"]);
    let entrypoint: Vec<String> = serde_json::from_str(&instruction("ENTRYPOINT")[0]).unwrap();
    assert_eq!(entrypoint, ["/usr/local/bin/pm"]);
    // (The HEALTHCHECK's continuation line also starts with CMD; the exec form is the image's.)
    let cmd = instruction("CMD").into_iter().rfind(|c| c.starts_with('[')).expect("a CMD");
    let cmd: Vec<String> = serde_json::from_str(&cmd).unwrap();
    assert_eq!(cmd, ["serve", "--listen", "0.0.0.0:8000", "--data-dir", "/data"]);
    let serve = help("serve");
    for flag in cmd.iter().filter(|w| w.starts_with("--")) {
        assert!(accepts(&serve, flag), "`pm serve` has no flag {flag}");
    }
    assert!(dockerfile.contains("${PORT:-8000}/healthz"), "the health check follows PORT");

    let ignored: Vec<String> = read(".dockerignore").lines().map(str::trim).map(str::to_owned).collect();
    for pattern in ["target", "data", ".git", "**/*.key"] {
        assert!(ignored.iter().any(|l| l == pattern), ".dockerignore lacks {pattern}");
    }
}

#[test]
fn the_image_from_a_host_built_binary_is_the_dockerfiles_runtime_stage() {
    // scripts/images.sh builds the runtime stage alone: the lines from its
    // FROM on, with the builder's binary taken from the build context.
    let dockerfile = read("Dockerfile");
    let images_sh = read("scripts/images.sh");
    let from = "\nFROM ${RUNTIME_IMAGE} AS runtime\n";
    let runtime = &dockerfile[dockerfile.find(from).expect("the runtime stage starts with this FROM")..];
    assert_eq!(runtime.matches("\nFROM ").count(), 1, "the runtime stage is the last one");
    assert!(images_sh.contains("/^FROM \\$\\{RUNTIME_IMAGE\\} AS runtime$/"), "images.sh finds that FROM");
    let copies: Vec<&str> = runtime.lines().filter(|l| l.contains("--from=")).collect();
    assert_eq!(
        copies,
        ["COPY --from=builder /usr/local/bin/pm /usr/local/bin/pm"],
        "only the binary comes from the builder"
    );
    assert!(images_sh.contains("COPY pm /usr/local/bin/pm"), "images.sh copies the binary from the build context");
    assert!(runtime.contains("RUN /usr/local/bin/pm --version"), "the image runs the binary once");
    assert!(!instructions(runtime, "HEALTHCHECK").is_empty(), "the image has a health check");
}

#[test]
fn the_java_servers_images_share_one_jre_image() {
    let jre = read("docker/jre/Dockerfile");
    assert!(jre.contains("openjdk-17-jre-headless"), "docker/jre installs the JRE");
    let images_sh = read("scripts/images.sh");
    for server in ["elasticsearch", "hbase"] {
        let dockerfile = read(&format!("docker/{server}/Dockerfile"));
        assert_eq!(
            instructions(&dockerfile, "FROM"),
            ["pm-local/jre:17-bookworm"],
            "docker/{server} starts FROM the jre image"
        );
        assert!(!dockerfile.contains("apt-get install"), "docker/{server} installs nothing the jre image has");
    }
    assert!(images_sh.contains("JRE_IMAGE=${JRE_IMAGE:-pm-local/jre:17-$SUITE}"), "images.sh tags the jre image so");
}

/// `${NAME:-default}`: the variable's name and its default.
fn variable_with_default(text: &str) -> Option<(&str, &str)> {
    let inner = text.strip_prefix("${")?.strip_suffix('}')?;
    inner.split_once(":-").filter(|(name, _)| name.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
}

#[test]
fn every_image_is_named_through_a_variable_whose_default_is_the_public_image() {
    // What scripts/images.sh prints, one `NAME=TAG` line per image it builds.
    let images_sh = read("scripts/images.sh");
    let printed: BTreeSet<&str> = images_sh
        .lines()
        .filter_map(|l| l.trim().split_once(") echo \"").map(|(_, rest)| rest.split('=').next().unwrap()))
        .collect();
    let expected: [(&str, &str, &str); 6] = [
        (STACK, "PM_IMAGE", "peer-mountain/pm:latest"),
        (STACK, "TCP_PROXY_IMAGE", "tecnativa/tcp-proxy:latest"),
        (STACK, "RABBITMQ_IMAGE", "rabbitmq:3.10-management"),
        (STACK, "ELASTICSEARCH_IMAGE", "docker.elastic.co/elasticsearch/elasticsearch:8.19.21"),
        (STACK, "HBASE_IMAGE", "harisekhon/hbase:2.1"),
        (DEVELOPMENT, "PM_DEV_IMAGE", "peer-mountain/pm:dev"),
    ];
    for file in FILES {
        // Uninterpolated, with the anchors resolved.
        let mut document: Value = serde_yaml::from_str(&read(file)).unwrap();
        document.apply_merge().unwrap();
        let mut seen = BTreeSet::new();
        for (name, service) in services(&document) {
            let text = image(&service);
            let (variable, default) = variable_with_default(&text)
                .unwrap_or_else(|| panic!("{file}: {name}'s image {text:?} is not ${{VARIABLE:-public image}}"));
            if let Some((_, _, public)) = expected.iter().find(|(_, v, _)| *v == variable) {
                assert_eq!(default, *public, "{file}: {name}: {variable}'s default");
            } else {
                panic!("{file}: {name} names its image with {variable}, which scripts/images.sh does not know");
            }
            seen.insert(variable.to_owned());
        }
        for variable in &seen {
            if variable != "PM_DEV_IMAGE" {
                assert!(
                    printed.contains(variable.as_str()),
                    "scripts/images.sh does not print {variable}: {printed:?}"
                );
            }
        }
        if file == STACK {
            let stack_variables: BTreeSet<String> =
                expected.iter().filter(|(f, _, _)| *f == STACK).map(|(_, v, _)| (*v).to_owned()).collect();
            assert_eq!(seen, stack_variables, "{file}: the images of the stack");
        }
    }
}

#[test]
fn in_both_files_the_hbase_health_check_is_a_thrift_call_that_runs_in_either_image() {
    for file in FILES {
        let all = services(&compose(file));
        let test = words(&all["hbase"]["healthcheck"]["test"]);
        assert_eq!(&test[..3], ["CMD", "bash", "-c"], "{file}: plain bash, no image-specific tool");
        let script = &test[3];
        assert!(script.contains("/dev/tcp/127.0.0.1/9090") && script.contains("getTableNames"), "{file}: {script}");
        assert!(!script.contains("wget") && !script.contains("8080"), "{file}: no REST server in pm-local/hbase");
    }
}

/// Runs docker; `None` when the binary is missing.
fn docker(args: &[&str]) -> Option<std::process::Output> {
    Command::new("docker")
        .args(args)
        .current_dir(root())
        .env("RABBITMQ_PASSWORD", "test-password")
        .env("PM_IMAGE", "peer-mountain/pm:test")
        .output()
        .ok()
}

#[test]
fn docker_itself_accepts_both_compose_files_where_its_cli_can_check_them() {
    if !matches!(docker(&["--version"]), Some(o) if o.status.success()) {
        println!("skipped: no docker CLI on this machine");
        return;
    }
    match docker(&["compose", "version"]) {
        Some(o) if o.status.success() => {
            let out = docker(&["compose", "-f", DEVELOPMENT, "config", "-q"]).unwrap();
            assert!(out.status.success(), "docker compose config: {}", String::from_utf8_lossy(&out.stderr));
        }
        Some(o) => println!(
            "not checked with `docker compose config`: the compose plugin is unavailable ({})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        None => unreachable!("docker ran above"),
    }
    match docker(&["stack", "config", "--help"]) {
        Some(o) if o.status.success() => {
            let out = docker(&["stack", "config", "-c", STACK]).unwrap();
            assert!(out.status.success(), "docker stack config: {}", String::from_utf8_lossy(&out.stderr));
            // What docker resolved still has every role with its command.
            let resolved: Value = serde_yaml::from_slice(&out.stdout).expect("docker stack config prints YAML");
            for role in ROLES {
                assert_eq!(words(&resolved["services"][role]["command"]).first().map(String::as_str), Some(role));
                assert_eq!(resolved["services"][role]["image"].as_str(), Some("peer-mountain/pm:test"));
            }
            // With the one-node override (scripts/stack-test.sh): DNS round
            // robin everywhere, the gateway alone published, in host mode.
            let out = docker(&["stack", "config", "-c", STACK, "-c", "docker/stack-one-node.yml"]).unwrap();
            assert!(out.status.success(), "docker stack config (one node): {}", String::from_utf8_lossy(&out.stderr));
            let one_node: Value = serde_yaml::from_slice(&out.stdout).expect("docker stack config prints YAML");
            for (name, service) in services(&one_node) {
                assert_eq!(service["deploy"]["endpoint_mode"].as_str(), Some("dnsrr"), "one node: {name}");
                let ports = service["ports"].as_sequence().map(Vec::len).unwrap_or(0);
                assert_eq!(ports, usize::from(name == "teleferic"), "one node: {name}'s published ports");
            }
            let gateway = &one_node["services"]["teleferic"];
            assert_eq!(gateway["ports"][0]["mode"].as_str(), Some("host"));
            assert_eq!(gateway["deploy"]["replicas"].as_u64(), Some(1), "one host-mode gateway per node");
        }
        _ => println!("not checked with `docker stack config`: this docker CLI has no `stack config`"),
    }
    // Debian's docker-compose (v1), which scripts/stack-test.sh uses for the development file.
    if let Ok(out) = Command::new("docker-compose")
        .args(["-f", DEVELOPMENT, "-f", "docker/development-prebuilt.yml", "config", "-q"])
        .current_dir(root())
        .env("PM_IMAGE", "peer-mountain/pm:test")
        .output()
    {
        assert!(out.status.success(), "docker-compose config: {}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn the_url_and_interpolation_helpers_read_what_the_files_write() {
    assert_eq!(host_port("amqp://pm:pw@rabbitmq-proxy:5672/%2f"), ("rabbitmq-proxy".into(), Some(5672)));
    assert_eq!(host_port("http://elasticsearch:9200"), ("elasticsearch".into(), Some(9200)));
    assert_eq!(interpolate("a${X:-b}c${Y:?set Y}d"), "abcinterpolatedd");
    assert_eq!(settings_key("PM_AUTHORIZER__MAX_AGE_SECS").as_deref(), Some("authorizer.max_age_secs"));
    assert_eq!(settings_key("PM_NODE_KEY").as_deref(), Some("node_key"));
    assert!(accepts("  --data-dir <DIR>\n", "--data-dir") && !accepts("  --data-dir <DIR>\n", "--data"));
    assert!(Path::new(env!("CARGO_BIN_EXE_pm")).exists());
}
