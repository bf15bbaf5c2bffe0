//! `ferry keys create|list|revoke`: API keys per tenant, stored as SHA-256 hashes.

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::serve::open_store;

/// Options of `ferry keys`.
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    /// The store the service uses: an SQLite file or a postgres:// URL.
    #[arg(long, default_value = "ferry.db", global = true, env = "FERRY_STORE")]
    store: String,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Issue a key for TENANT and print it once (only its hash is stored). A running
    /// `ferry serve` that started without keys requires them within 2 seconds.
    Create {
        /// The tenant the key acts for; a tenant sees only its own jobs.
        tenant: String,
        /// A label to recognise the key by in `ferry keys list`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List keys (id, tenant, name, created, revoked); never the keys themselves.
    List {
        /// Only this tenant's keys.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by its id (as `ferry keys list` shows it); effective at once.
    Revoke {
        /// The key's id.
        id: String,
    },
}

fn when(secs: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs.max(0.0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Runs `ferry keys ...`.
pub(crate) async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let store = open_store(&args.store).await?;
    match args.command {
        KeysCommand::Create { tenant, name } => {
            anyhow::ensure!(!tenant.trim().is_empty(), "the tenant must not be empty");
            let issued = store
                .create_key(&tenant, &name)
                .await
                .context("creating the key")?;
            eprintln!(
                "key {} for tenant {:?} created; it is shown only now:",
                issued.key.id, issued.key.tenant
            );
            println!("{}", issued.plaintext);
        }
        KeysCommand::List { tenant } => {
            let keys = store
                .list_keys(tenant.as_deref())
                .await
                .context("listing the keys")?;
            println!(
                "{:<36} {:<16} {:<16} {:<22} revoked",
                "id", "tenant", "name", "created"
            );
            for k in keys {
                println!(
                    "{:<36} {:<16} {:<16} {:<22} {}",
                    k.id,
                    k.tenant,
                    k.name,
                    when(k.created_at),
                    k.revoked_at.map(when).unwrap_or_else(|| "-".into())
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let revoked = store.revoke_key(&id).await.context("revoking the key")?;
            anyhow::ensure!(
                revoked,
                "no live key has the id {id:?} (see `ferry keys list`)"
            );
            eprintln!("key {id} revoked");
        }
    }
    Ok(())
}
