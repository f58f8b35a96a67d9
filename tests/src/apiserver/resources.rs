//! The resource types the emulator serves: the built-in ones and every registered CRD.
//!
//! A resource is addressed as in the API conventions ("Resources"): `group`, `version`, the
//! lower-case plural `resource` name, and whether it is namespaced. Storage is keyed by
//! (group, resource) — not version — because the apiserver stores one object per name whatever
//! version it is read at (a CRD with several served versions and conversion strategy `None` only
//! rewrites `apiVersion`).

use serde_json::Value;

use super::schema::Schema;

/// An `additionalPrinterColumns` entry (CRD) or a built-in table column.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: String,
    pub json_path: String,
    pub description: String,
    pub priority: i64,
}

/// How a built-in type's table rows are computed (`kubectl get` asks the server for a `Table`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// NAME, AGE — plus the CRD's printer columns when it declares any.
    Generic,
    /// NAME READY STATUS RESTARTS AGE, as pkg/printers/internalversion prints pods.
    Pod,
    /// NAME STATUS AGE.
    Namespace,
    /// LAST SEEN TYPE REASON OBJECT MESSAGE (core/v1 events, as `kubectl get events`).
    Event,
}

/// One servable (group, version, resource).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    /// Lower-case plural, the URL segment (`pods`, `imagebuilds`).
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// `status` subresource: status is written only through `/status`, and spec changes bump
    /// `metadata.generation` (CRD docs, "Status subresource").
    pub status_subresource: bool,
    /// Whether `metadata.generation` tracks spec changes (apps types, CRDs, ...).
    pub has_generation: bool,
    /// Storage location: events.k8s.io/v1 events are stored as core/v1 events (one registry,
    /// two API shapes), like the real apiserver.
    pub storage_group: String,
    pub storage_resource: String,
    /// Structural schema of a CRD version; `None` for built-ins (decoded through k8s-openapi types).
    pub schema: Option<Schema>,
    pub printer_columns: Vec<PrinterColumn>,
    pub table: TableKind,
    /// CRD `selectableFields` plus the built-in field labels (see selector.rs).
    pub field_labels: Vec<String>,
    /// Name of the CRD that registered this resource.
    pub crd: Option<String>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn is_core_builtin(&self) -> bool {
        self.crd.is_none()
    }

    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            status_subresource: false,
            has_generation: false,
            storage_group: group.into(),
            storage_resource: plural.into(),
            schema: None,
            printer_columns: Vec::new(),
            table: TableKind::Generic,
            field_labels: Vec::new(),
            crd: None,
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    fn with_generation(mut self) -> Self {
        self.has_generation = true;
        self
    }

    fn fields(mut self, labels: &[&str]) -> Self {
        self.field_labels = labels.iter().map(|s| s.to_string()).collect();
        self
    }

    fn table(mut self, t: TableKind) -> Self {
        self.table = t;
        self
    }

    fn categories(mut self, c: &[&str]) -> Self {
        self.categories = c.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// The `spec`-independent subresources that exist for a type (discovery lists them).
pub fn subresources(rt: &ResourceType) -> Vec<&'static str> {
    let mut subs = Vec::new();
    if rt.status_subresource {
        subs.push("status");
    }
    if rt.group.is_empty() && rt.plural == "pods" {
        subs.push("log");
    }
    subs
}

/// The built-in types (issue 6: core/v1, events.k8s.io, coordination, apps, networking, rbac,
/// apiextensions).
/// Field labels are those the real apiserver accepts in `fieldSelector` for each type
/// (`pkg/registry/core/pod/strategy.go` `PodToSelectableFields`, etc.).
pub fn builtins() -> Vec<ResourceType> {
    let mut pod = ResourceType::builtin("", "v1", "pods", "Pod", true)
        .short(&["po"])
        .categories(&["all"])
        .with_status()
        .fields(&[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ]);
    pod.table = TableKind::Pod;
    let mut ns = ResourceType::builtin("", "v1", "namespaces", "Namespace", false)
        .short(&["ns"])
        .with_status()
        .fields(&["status.phase"]);
    ns.table = TableKind::Namespace;
    let mut events_k8s = ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true)
        .short(&["ev"])
        .fields(&[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ]);
    events_k8s.storage_group = String::new();
    vec![
        pod,
        ns,
        ResourceType::builtin("", "v1", "secrets", "Secret", true).fields(&["type"]),
        ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true).short(&["cm"]),
        ResourceType::builtin("", "v1", "serviceaccounts", "ServiceAccount", true).short(&["sa"]),
        ResourceType::builtin("", "v1", "services", "Service", true)
            .short(&["svc"])
            .categories(&["all"])
            .with_status(),
        ResourceType::builtin("", "v1", "nodes", "Node", false)
            .short(&["no"])
            .with_status(),
        ResourceType::builtin("", "v1", "events", "Event", true)
            .short(&["ev"])
            .table(TableKind::Event)
            .fields(&[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ]),
        events_k8s,
        ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true),
        ResourceType::builtin("apps", "v1", "deployments", "Deployment", true)
            .short(&["deploy"])
            .categories(&["all"])
            .with_status()
            .with_generation(),
        // Stored only (no traffic to police): the Helm chart's optional NetworkPolicy applies.
        ResourceType::builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
        )
        .short(&["netpol"]),
        ResourceType::builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
        ),
        ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
        ),
        ResourceType::builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        )
        .short(&["crd", "crds"])
        .with_status()
        .with_generation(),
    ]
}

/// Preferred-version order of group names in `/apis` (built-ins first, then CRD groups sorted),
/// like the apiserver's group priority list.
pub fn group_order(groups: &mut [String]) {
    const PRIORITY: [&str; 6] = [
        "apps",
        "events.k8s.io",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "apiextensions.k8s.io",
    ];
    groups.sort_by_key(|g| {
        let p = PRIORITY
            .iter()
            .position(|x| x == g)
            .unwrap_or(PRIORITY.len());
        (p, g.clone())
    });
}

/// Reads `metadata.<field>` as a string.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}
