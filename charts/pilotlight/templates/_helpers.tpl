{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "pilotlight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every resource name: fullnameOverride, else the release name when it
already contains the chart name, else "<release>-<chart>". Truncated so that
the longest suffix added ("-sandbox-user") still fits 63 characters.
*/}}
{{- define "pilotlight.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "pilotlight.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pilotlight.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels on every object. Deliberately NOT app.kubernetes.io/managed-by=pilotlight:
the operator and the gateway watch pods carrying that label as function pods.
*/}}
{{- define "pilotlight.commonLabels" -}}
helm.sh/chart: {{ include "pilotlight.chart" . }}
app.kubernetes.io/part-of: pilotlight
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels of objects that belong to no single component. */}}
{{- define "pilotlight.labels" -}}
{{ include "pilotlight.commonLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Selector labels of one component; call with (dict "root" $ "component" "operator").
app.kubernetes.io/name is "pilotlight-<component>" whatever the release is
called: the NetworkPolicy the operator puts in front of each sandbox admits
pods labelled app.kubernetes.io/name=pilotlight-gateway.
*/}}
{{- define "pilotlight.selectorLabels" -}}
app.kubernetes.io/name: pilotlight-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Common plus selector labels of one component (same argument as selectorLabels). */}}
{{- define "pilotlight.componentLabels" -}}
{{ include "pilotlight.commonLabels" .root }}
{{ include "pilotlight.selectorLabels" . }}
{{- end -}}

{{/* Names of the components' objects. */}}
{{- define "pilotlight.operatorName" -}}
{{- printf "%s-operator" (include "pilotlight.fullname" .) -}}
{{- end -}}

{{- define "pilotlight.gatewayName" -}}
{{- printf "%s-gateway" (include "pilotlight.fullname" .) -}}
{{- end -}}

{{- define "pilotlight.webhookName" -}}
{{- printf "%s-webhook" (include "pilotlight.operatorName" .) | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "pilotlight.configName" -}}
{{- printf "%s-config" (include "pilotlight.fullname" .) -}}
{{- end -}}

{{- define "pilotlight.operatorServiceAccount" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "pilotlight.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pilotlight.gatewayServiceAccount" -}}
{{- if .Values.gateway.serviceAccount.create -}}
{{- default (include "pilotlight.gatewayName" .) .Values.gateway.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.gateway.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A full image reference; call with (dict "root" $ "image" .Values.operator.image).
[registry/]repository:tag, the tag defaulting to the chart's appVersion;
[registry/]repository@digest when the image has a digest (the tag is then
ignored: a digest names one image, a tag may move).
*/}}
{{- define "pilotlight.image" -}}
{{- $registry := .root.Values.image.registry | trimSuffix "/" -}}
{{- $repository := ternary (printf "%s/%s" $registry .image.repository) .image.repository (ne $registry "") -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .root.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The PriorityClass of capacity-reservation placeholders: cluster-scoped, so named
after the release ("pilotlight-reservation" for a release named pilotlight).
*/}}
{{- define "pilotlight.reservationPriorityClass" -}}
{{- printf "%s-reservation" (include "pilotlight.fullname" .) -}}
{{- end -}}

{{/*
Log settings of the operator and the gateway, as their flags; nothing for the
defaults (Information, text). Indented for an args list.
*/}}
{{- define "pilotlight.loggingArgs" -}}
{{- if ne .Values.logging.level "Information" }}
- --log-level
- {{ .Values.logging.level }}
{{- end }}
{{- if ne .Values.logging.format "text" }}
- --log-format
- {{ .Values.logging.format }}
{{- end }}
{{- end -}}

{{/* In-cluster URL of this release's gateway Service. */}}
{{- define "pilotlight.gatewayUrl" -}}
{{- $port := int .Values.gateway.service.port -}}
{{- if eq $port 80 -}}
{{- printf "http://%s.%s" (include "pilotlight.gatewayName" .) .Release.Namespace -}}
{{- else -}}
{{- printf "http://%s.%s:%d" (include "pilotlight.gatewayName" .) .Release.Namespace $port -}}
{{- end -}}
{{- end -}}

{{/*
The hardening every container of the chart gets unless a component's
podSecurityContext / securityContext replaces it: the images run as 65532
(USER in docker/*.Dockerfile), write nothing but their emptyDirs, and need no
capabilities. Call with the component's values.
*/}}
{{- define "pilotlight.podSecurityContext" -}}
{{- if .podSecurityContext -}}
{{- toYaml .podSecurityContext -}}
{{- else -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- end -}}

{{- define "pilotlight.containerSecurityContext" -}}
{{- if .securityContext -}}
{{- toYaml .securityContext -}}
{{- else -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- end -}}

{{/*
A PodDisruptionBudget for one component; call with
(dict "root" $ "component" "gateway" "values" .Values.gateway). Rendered when
enabled and either maxUnavailable is set or there is more than one replica (a
minAvailable of one replica would block every drain). policy/v1 where the
cluster serves it (1.21+), policy/v1beta1 on 1.20. Offline (helm template) Helm
lists every built-in API version whatever --kube-version says, so the version
decides there too (pass the cluster's).
*/}}
{{- define "pilotlight.podDisruptionBudget" -}}
{{- $pdb := .values.podDisruptionBudget -}}
{{- $maxUnavailable := $pdb.maxUnavailable -}}
{{- if and $pdb.enabled (or (not (kindIs "invalid" $maxUnavailable)) (gt (int .values.replicas) 1)) }}
{{- if and (.root.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .root.Capabilities.KubeVersion.Version) }}
apiVersion: policy/v1
{{- else }}
apiVersion: policy/v1beta1
{{- end }}
kind: PodDisruptionBudget
metadata:
  name: {{ printf "%s-%s" (include "pilotlight.fullname" .root) .component }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "pilotlight.componentLabels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $maxUnavailable) }}
  maxUnavailable: {{ $maxUnavailable }}
  {{- else }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "pilotlight.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}

{{/* The metadata: line of a CRD, with the chart's labels and, under crds.keep, Helm's keep policy. */}}
{{- define "pilotlight.crdMetadata" -}}
metadata:
  labels:
    {{- include "pilotlight.labels" . | nindent 4 }}
  {{- if .Values.crds.keep }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
{{- end -}}
