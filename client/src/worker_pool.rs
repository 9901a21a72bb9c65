//! One gRPC channel per worker address, made lazily and shared by every stream of this client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use alluvium_common::identity::IdentityInterceptor;
use alluvium_common::{Config, Error, Result};
use alluvium_proto::block_worker_client::BlockWorkerClient;
use alluvium_proto::WorkerNetAddress;
use parking_lot::Mutex;

use crate::master_client::{endpoint, interceptor, Authed};

pub type WorkerClient = BlockWorkerClient<Authed>;

#[derive(Clone)]
pub struct WorkerPool {
    clients: Arc<Mutex<HashMap<String, WorkerClient>>>,
    interceptor: IdentityInterceptor,
    connect_timeout: Duration,
}

/// `host:port` of a worker's gRPC service.
pub fn worker_address(a: &WorkerNetAddress) -> String {
    format!("{}:{}", a.host, a.rpc_port)
}

impl WorkerPool {
    pub fn new(config: &Config) -> Result<Self> {
        Ok(Self {
            clients: Arc::new(Mutex::new(HashMap::new())),
            interceptor: interceptor(config)?,
            // Short: a worker that cannot be reached is skipped for the next location.
            connect_timeout: config.client.rpc_timeout.min(Duration::from_secs(5)),
        })
    }

    /// The client of the worker at `address` (a clone sharing the channel).
    pub fn get(&self, address: Option<&WorkerNetAddress>) -> Result<WorkerClient> {
        let a = address.ok_or_else(|| Error::internal("a worker location carries no address"))?;
        let key = worker_address(a);
        if let Some(c) = self.clients.lock().get(&key) {
            return Ok(c.clone());
        }
        // Built outside the lock: connect_lazy does no I/O, but keep the critical section minimal.
        let channel = endpoint(&key, self.connect_timeout)?.connect_lazy();
        let max = alluvium_proto::MAX_MESSAGE_BYTES;
        let client = BlockWorkerClient::with_interceptor(channel, self.interceptor.clone())
            .max_decoding_message_size(max)
            .max_encoding_message_size(max);
        Ok(self.clients.lock().entry(key).or_insert(client).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_entry_per_address() {
        let mut c = Config::default();
        c.client.user = "t".into();
        let pool = WorkerPool::new(&c).unwrap();
        let a = WorkerNetAddress {
            host: "127.0.0.1".into(),
            rpc_port: 1,
            http_port: 2,
        };
        pool.get(Some(&a)).unwrap();
        pool.get(Some(&a)).unwrap();
        assert_eq!(pool.clients.lock().len(), 1);
        assert!(pool.get(None).is_err());
    }
}
