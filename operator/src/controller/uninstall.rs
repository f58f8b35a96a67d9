//! `stratum-operator --remove-finalizers`: the uninstall step. Removes this operator's finalizer
//! from every ImageBuild in scope and exits, so that ImageBuilds (and the CRD) can still be
//! deleted once no operator runs. Their pods go with their ownerReferences. Meant for a Helm
//! pre-delete hook or a manual uninstall (docs/arch/operator.md, "Deletion and the finalizer").

use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use stratum_crds::ImageBuild;

use super::Error;
use super::apply::remove_finalizer_with;
use crate::reconcile::FINALIZER;

/// Removes the finalizer from every ImageBuild in `namespaces` (all when empty); returns how
/// many ImageBuilds carried it.
pub async fn remove_finalizers(client: &Client, namespaces: &[String]) -> Result<usize, Error> {
    let apis: Vec<Api<ImageBuild>> = if namespaces.is_empty() {
        vec![Api::all(client.clone())]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let mut removed = 0;
    for api in apis {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|source| Error::Kube {
                step: "list_imagebuilds",
                build: "*".into(),
                source,
            })?;
        for build in list
            .items
            .iter()
            .filter(|b| b.finalizers().iter().any(|f| f == FINALIZER))
        {
            remove_finalizer_with(client, build).await?;
            tracing::info!(
                namespace = build.namespace().unwrap_or_default(),
                name = build.name_any(),
                "finalizer removed"
            );
            removed += 1;
        }
    }
    Ok(removed)
}
