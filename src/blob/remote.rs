//! Sources in an object store: an S3-compatible bucket (credentials, region and endpoint
//! from the usual `AWS_*` variables) or a directory every process can reach.

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::BlobError;

/// Sources up to this size go up in one request; bigger ones in parts of this size.
const PART_BYTES: usize = 16 << 20;

/// The bucket (and prefix) of `s3://bucket/prefix`, `rest` being what follows `s3://`.
#[cfg(feature = "s3")]
fn s3(url: &str, rest: &str) -> Result<Arc<dyn ObjectStore>, BlobError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(BlobError::Config(format!("{url} names no bucket")));
    }
    let s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()?;
    let prefix = prefix.trim_matches('/');
    Ok(if prefix.is_empty() {
        Arc::new(s3)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
    })
}

/// Without the `s3` feature, S3 URLs are refused with what to do instead.
#[cfg(not(feature = "s3"))]
fn s3(url: &str, _rest: &str) -> Result<Arc<dyn ObjectStore>, BlobError> {
    Err(BlobError::Config(format!(
        "{url}: this build of Intake has no S3 support (it was built without the s3 feature); \
         use file:///dir, or build with the default features"
    )))
}

/// The object `key` of S3 bucket `bucket` (the server's S3 credentials, endpoint and region
/// from the `AWS_*` variables), as its size and a stream of its bytes.
pub async fn read_s3_object(
    bucket: &str,
    key: &str,
) -> Result<(u64, BoxStream<'static, Result<bytes::Bytes, BlobError>>), BlobError> {
    let store = s3(&format!("s3://{bucket}"), bucket)?;
    let got = store.get(&ObjectPath::from(key)).await?;
    let size = got.meta.size;
    Ok((
        size,
        got.into_stream()
            .map(|c| c.map_err(BlobError::from))
            .boxed(),
    ))
}

/// An object store with the prefix sources are kept under.
#[derive(Debug, Clone)]
pub(super) struct Remote {
    store: Arc<dyn ObjectStore>,
    url: String,
}

impl Remote {
    /// Opens `s3://bucket[/prefix]` or `file:///dir`.
    pub(super) fn open(url: &str) -> Result<Remote, BlobError> {
        let store: Arc<dyn ObjectStore> = if let Some(rest) = url.strip_prefix("s3://") {
            s3(url, rest)?
        } else if let Some(dir) = url.strip_prefix("file://") {
            std::fs::create_dir_all(dir)?;
            Arc::new(LocalFileSystem::new_with_prefix(dir)?)
        } else {
            return Err(BlobError::Config(format!(
                "unsupported source storage {url:?}: use s3://bucket/prefix or file:///dir"
            )));
        };
        Ok(Remote {
            store,
            url: url.to_owned(),
        })
    }

    /// The URL it was opened with.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    /// Uploads a local file to `path`.
    pub(super) async fn upload(&self, file: &Path, path: &str) -> Result<(), BlobError> {
        let location = ObjectPath::from(path);
        let mut source = tokio::fs::File::open(file).await?;
        let len = source.metadata().await?.len();
        if len <= PART_BYTES as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            source.read_to_end(&mut bytes).await?;
            self.store.put(&location, PutPayload::from(bytes)).await?;
            return Ok(());
        }
        let upload = self.store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = source.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(2).await?;
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        Ok(())
    }

    /// Downloads `path` into a new local file, synced.
    pub(super) async fn download(&self, path: &str, file: &Path) -> Result<(), BlobError> {
        let got = self.store.get(&ObjectPath::from(path)).await?;
        let mut out = tokio::fs::File::create(file).await?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?).await?;
        }
        out.sync_all().await?;
        Ok(())
    }

    /// Appends `path`'s bytes to an open local file.
    pub(super) async fn append_to(
        &self,
        path: &str,
        out: &mut tokio::fs::File,
    ) -> Result<(), BlobError> {
        let got = self.store.get(&ObjectPath::from(path)).await?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?).await?;
        }
        Ok(())
    }

    /// The size of `path`, or None when there is no such object.
    pub(super) async fn size(&self, path: &str) -> Result<Option<u64>, BlobError> {
        match self.store.head(&ObjectPath::from(path)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The objects under `prefix`, with their sizes, by name.
    pub(super) async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, BlobError> {
        let prefix = ObjectPath::from(prefix);
        let mut found = Vec::new();
        let mut listing = self.store.list(Some(&prefix));
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            found.push((meta.location.to_string(), meta.size));
        }
        found.sort();
        Ok(found)
    }

    /// Deletes `path` (missing is fine).
    pub(super) async fn delete(&self, path: &str) -> Result<(), BlobError> {
        match self.store.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
