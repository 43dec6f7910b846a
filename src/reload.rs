//! Reload on SIGHUP (SPEC §6): the TLS certificate and key, the client
//! CAs, the CRLs, the roles and the binds are read again and swapped in
//! whole; the other fields of the file need a restart (they are logged,
//! not applied). A configuration that does not load is refused whole and
//! the current one keeps serving.
//!
//! What a reload changes for what is already open:
//! - every connected chain is verified again under the new CAs and CRLs;
//!   the connections of a chain that fails are closed (their watches end);
//! - the other clients' grants are recomputed: their next request is
//!   decided under the new policy;
//! - every waiting watch is decided again: one no longer allowed ends, the
//!   rest are filtered with the client's new grants from then on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::ServerConfig;

use crate::api::App;
use crate::config::Config;
use crate::identity::Identity;
use crate::policy::{Policy, PrefixSet};

/// The part of the configuration a reload replaces.
pub struct Live {
    /// Counts reloads: 0 for the configuration keygate started with.
    pub generation: u64,
    /// The configuration it came from.
    pub config: Config,
    /// The configuration keygate started with: what the fields a reload
    /// does not apply still are.
    pub boot: Arc<Config>,
    /// For new handshakes.
    pub tls: Arc<ServerConfig>,
    /// Roles and binds.
    pub policy: Policy,
    /// DER of the client CAs (to name a leaf's issuer).
    pub client_cas: Vec<Vec<u8>>,
    /// The full client verifier (CAs, CRLs), to check connected chains
    /// again.
    pub verifier: Arc<dyn ClientCertVerifier>,
    /// The earliest notAfter of the server's chain, Unix seconds.
    pub server_not_after: Option<i64>,
    /// `--allow-dev-certs`: the development CA may be trusted on an
    /// address other than loopback.
    pub allow_dev_certs: bool,
    /// thisUpdate and nextUpdate of each CRL, Unix seconds.
    pub crls: Vec<(i64, Option<i64>)>,
}

impl Live {
    /// Builds everything a reload swaps from `config`, checking every file
    /// it names.
    ///
    /// The development CA (its key is public) is refused when keygate
    /// listens on an address other than loopback, unless
    /// `allow_dev_certs`: at start and at every reload alike.
    pub fn new(
        config: Config,
        generation: u64,
        boot: Arc<Config>,
        allow_dev_certs: bool,
    ) -> Result<Live, String> {
        let roots = crate::tls::client_roots(&config.tls).map_err(|e| e.to_string())?;
        if crate::tls::has_dev_ca(&roots) {
            let loopback = boot
                .server
                .listen
                .parse::<std::net::SocketAddr>()
                .is_ok_and(|a| a.ip().is_loopback());
            if !loopback && !allow_dev_certs {
                return Err(format!(
                    "{}: tls.client_ca contains the development CA (its key is public) and server.listen {} is not loopback: use your own CA, or pass --allow-dev-certs",
                    config.path.display(),
                    boot.server.listen
                ));
            }
            tracing::warn!("tls.client_ca contains the development CA: its private key is public, anyone can make a client certificate");
        }
        // Each file read once: the verifier and the CRL metrics see the
        // same contents.
        let crls = crate::tls::client_crls(&config.tls).map_err(|e| e.to_string())?;
        let verifier =
            crate::tls::client_verifier(&config.tls, &roots, &crls).map_err(|e| e.to_string())?;
        // The TLS versions keygate started with (a reload does not change
        // them: see `needs_restart`).
        let mut tls = config.tls.clone();
        tls.min_version.clone_from(&boot.tls.min_version);
        let tls =
            crate::tls::server_config_with(&tls, verifier.clone()).map_err(|e| e.to_string())?;
        let client_cas = roots.into_iter().map(|c| c.to_vec()).collect();
        let server_not_after = crate::tls::earliest_not_after(
            &crate::tls::server_chain(&config.tls).map_err(|e| e.to_string())?,
        );
        Ok(Live {
            generation,
            tls,
            policy: Policy::new(&config),
            client_cas,
            verifier,
            server_not_after,
            crls: crate::tls::crl_dates(&crls),
            config,
            boot,
            allow_dev_certs,
        })
    }

    /// Who a verified chain (leaf first) is: its issuer is named among this
    /// configuration's CAs first, then the intermediates it presented (an
    /// older certificate of a configured CA, sent along, is not its
    /// issuer).
    pub fn identity(&self, chain: &[CertificateDer<'_>]) -> Identity {
        let issuers: Vec<&[u8]> = self
            .client_cas
            .iter()
            .map(Vec::as_slice)
            .chain(chain[1..].iter().map(|c| c.as_ref()))
            .collect();
        Identity::from_leaf(chain[0].as_ref(), &issuers)
    }

    /// Whether a chain (leaf first) is still trusted under this
    /// configuration.
    pub fn trusts(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return false;
        };
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .is_ok()
    }
}

/// The fields a reload does not apply that differ between `old` (what
/// keygate started with) and `new`.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    macro_rules! compare {
        ($($section:ident . $field:ident),* $(,)?) => {
            $(
                if format!("{:?}", old.$section.$field) != format!("{:?}", new.$section.$field) {
                    changed.push(concat!(stringify!($section), ".", stringify!($field)));
                }
            )*
        };
    }
    compare!(
        server.listen,
        server.advertise_url,
        server.ops_listen,
        server.max_connections,
        server.max_connections_per_identity,
        server.max_watches_per_identity,
        server.max_streams_per_connection,
        server.handshake_timeout,
        server.request_timeout,
        server.idle_timeout,
        server.shutdown_timeout,
        server.max_body_bytes,
        server.max_header_bytes,
        server.max_header_count,
        tls.min_version,
        log.format,
        log.audit,
    );
    if format!("{:?}", old.backend) != format!("{:?}", new.backend) {
        changed.push("backend");
    }
    changed
}

/// The outcome of the reloads so far.
#[derive(Default)]
pub struct ReloadStats {
    /// Reloads applied.
    pub ok: AtomicU64,
    /// Reloads refused.
    pub failed: AtomicU64,
    /// Why the last reload was refused; `None` when it was applied (or
    /// none was asked for).
    pub last_error: Mutex<Option<String>>,
}

/// Reads the configuration file again and applies it; on an error the
/// current configuration stays, and the error is returned (and kept for
/// `/readyz`).
pub fn reload(app: &App) -> Result<(), String> {
    let result = apply(app);
    let stats = &app.reloads;
    let mut last = stats.last_error.lock().unwrap_or_else(|p| p.into_inner());
    match &result {
        Ok(()) => {
            stats.ok.fetch_add(1, Ordering::Relaxed);
            *last = None;
        }
        Err(e) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            *last = Some(e.clone());
        }
    }
    result
}

fn apply(app: &App) -> Result<(), String> {
    let current = app.live.load_full();
    let config = Config::load(&current.config.path).map_err(|e| e.to_string())?;
    let restart = needs_restart(&current.boot, &config);
    let watched = PrefixSet::all_read_prefixes(&config);
    let live = Arc::new(Live::new(
        config,
        current.generation + 1,
        current.boot.clone(),
        current.allow_dev_certs,
    )?);
    // A directory's removal records the watched paths below it, for the
    // clients that read them; the ones clients may newly read are added
    // first, and every removal published after the grants change (even one
    // applied before) records them. The ones no longer read go after.
    if !app
        .store
        .add_watched(watched.clone(), Duration::from_secs(10))
    {
        tracing::warn!("reload: the store did not publish its writes in flight within 10 s: a directory removed meanwhile may not reach a newly granted client's watches");
    }
    // Each client's new grants (none: its chain is no longer trusted),
    // decided before the lock below: verifying chains again takes time,
    // and handshakes wait for that lock.
    let decide = |client: Arc<crate::api::Client>| {
        // Its issuer is named among the new CAs.
        let grants = live
            .trusts(&client.chain)
            .then(|| live.policy.shared_grants(&live.identity(&client.chain)));
        (client, grants)
    };
    let mut decided: Vec<_> = app.clients.live().into_iter().map(decide).collect();
    let ended = {
        // No client is made while the policy changes (see
        // `App::client_for`): each one is made under one configuration,
        // and every one that exists now is updated below.
        let _no_new_clients = app.reloading.write().unwrap_or_else(|p| p.into_inner());
        app.live.store(live.clone());
        // The clients made since, under the configuration before.
        let seen: std::collections::HashSet<*const crate::api::Client> =
            decided.iter().map(|(c, _)| Arc::as_ptr(c)).collect();
        let since: Vec<_> = app
            .clients
            .live()
            .into_iter()
            .filter(|c| !seen.contains(&Arc::as_ptr(c)))
            .collect();
        decided.extend(since.into_iter().map(decide));
        // Then the grants change and the watches are decided again with
        // them in one step, between two commits' events: an unfiltered
        // watch (its client read everything) never sees an event after
        // its client's grants narrowed. A watch being set up now waits,
        // then is decided under the new grants.
        let ended = app.store.redecide_watches_after(|| {
            for (client, grants) in decided {
                match grants {
                    Some(grants) => client.auth.grants.store(grants),
                    None => {
                        tracing::info!(
                            client = client.identity.label(),
                            "reload: the client's certificate chain is no longer trusted: its connections are closed"
                        );
                        client.revoke();
                    }
                }
            }
        });
        // No client reads the paths dropped now.
        app.store.set_watched(watched);
        ended
    };
    for field in &restart {
        tracing::warn!(
            field,
            "reload: {field} changed and needs a restart: not applied"
        );
    }
    tracing::info!(
        generation = live.generation,
        watches_ended = ended,
        "configuration reloaded from {}",
        live.config.path.display()
    );
    Ok(())
}
