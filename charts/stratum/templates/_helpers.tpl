{{/* Names and labels shared by every template. */}}

{{/* The release's object name prefix: `<release>-stratum`, or the release name when it already
     says stratum. Truncated to 52 characters, leaving room for suffixes within the 63 limit. */}}
{{- define "stratum.fullname" -}}
{{- if contains "stratum" .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-stratum" .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stratum.selectorLabels" -}}
app.kubernetes.io/name: stratum-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "stratum.labels" -}}
{{ include "stratum.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: stratum
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "stratum.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "stratum.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Leader election is on exactly when more than one replica runs: a single replica needs no
     Lease (the Deployment uses the Recreate strategy, so two never overlap). */}}
{{- define "stratum.leaderElection" -}}
{{- if gt (int .Values.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{- define "stratum.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "stratum.builderImage" -}}
{{- printf "%s:%s" .Values.builder.image.repository (default .Chart.AppVersion .Values.builder.image.tag) -}}
{{- end -}}

{{/* The operator's flags (operator/src/config.rs), one per value; tests/src/chart.rs reads them
     back from the rendered Deployment. */}}
{{- define "stratum.args" -}}
- --http-addr=0.0.0.0:{{ .Values.httpPort }}
- --log-format={{ .Values.logFormat }}
- --concurrency={{ .Values.concurrency }}
- --builder-image={{ include "stratum.builderImage" . }}
- --builder-cpu-request={{ .Values.builder.resources.cpuRequest }}
- --builder-memory-request={{ .Values.builder.resources.memoryRequest }}
- --builder-memory-limit={{ .Values.builder.resources.memoryLimit }}
- --default-timeout={{ .Values.builder.defaultTimeout }}
{{- with .Values.builder.workSizeLimit }}
- --work-size-limit={{ . }}
{{- end }}
{{- with .Values.watchNamespaces }}
- --namespaces={{ join "," . }}
{{- end }}
{{- if include "stratum.leaderElection" . }}
- --leader-election
{{- end }}
{{- end -}}

{{/* What the operator does with ImageBuilds, Pods, Secrets and Events, verb by verb from its
     code (operator/src/controller): watch builds, patch their finalizer and status-patch them (server-side
     apply on /status), list/watch/create/delete builder pods (a live list per reconcile, the owned-pod
     watch), get push and source Secrets (existence, type, `.dockerconfigjson` to verify the
     push), and events.k8s.io Events from kube-runtime's Recorder (create, then patch a series). */}}
{{- define "stratum.operatorRules" -}}
- apiGroups: ["stratum.dev"]
  resources: ["imagebuilds"]
  # patch: adding and removing the finalizer `stratum.dev/builder-pods`.
  verbs: ["list", "watch", "patch"]
- apiGroups: ["stratum.dev"]
  # Where the OwnerReferencesPermissionEnforcement admission plugin is on, setting
  # blockOwnerDeletion on builder pods needs update on the owner's finalizers.
  resources: ["imagebuilds/finalizers"]
  verbs: ["update"]
- apiGroups: ["stratum.dev"]
  resources: ["imagebuilds/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
