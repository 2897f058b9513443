{{/*
Names and labels shared by every template. Each component's resources are named
"<fullname>-<component>"; the names the binaries need to agree on (settings ConfigMap,
snapshot Secrets, Lease, admin token) are defined here once.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "modelgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's base name: fullnameOverride, else the release name when it already holds
the chart name (release "modelgate" -> "modelgate"), else "<release>-<chart>". Kept to 40
characters so every "<fullname>-<suffix>" stays a valid name.
*/}}
{{- define "modelgate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "modelgate.operator.fullname" -}}
{{- printf "%s-operator" (include "modelgate.fullname" .) }}
{{- end }}

{{- define "modelgate.dataplane.fullname" -}}
{{- printf "%s-dataplane" (include "modelgate.fullname" .) }}
{{- end }}

{{/* "name-version" for the helm.sh/chart label. */}}
{{- define "modelgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "modelgate.labels" -}}
helm.sh/chart: {{ include "modelgate.chart" . }}
app.kubernetes.io/name: {{ include "modelgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: modelgate
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of a component: (dict "ctx" $ "component" "operator"). */}}
{{- define "modelgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modelgate.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Labels of a component's resources: (dict "ctx" $ "component" "operator"). */}}
{{- define "modelgate.componentLabels" -}}
{{ include "modelgate.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* An image reference: (dict "image" .Values.operator.image "ctx" $); tag defaults to appVersion. */}}
{{- define "modelgate.image" -}}
{{- $tag := .image.tag | default .ctx.Chart.AppVersion | toString }}
{{- if .image.digest }}
{{- printf "%s:%s@%s" .image.repository $tag .image.digest }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* The ServiceAccount of the operator. */}}
{{- define "modelgate.operator.serviceAccountName" -}}
{{- default (include "modelgate.operator.fullname" .) .Values.operator.serviceAccount.name }}
{{- end }}

{{/* The ServiceAccount of the data plane. */}}
{{- define "modelgate.dataplane.serviceAccountName" -}}
{{- default (include "modelgate.dataplane.fullname" .) .Values.dataplane.serviceAccount.name }}
{{- end }}

{{/* The Secret holding the admin token (generated, or adminToken.existingSecret). */}}
{{- define "modelgate.adminTokenSecretName" -}}
{{- default (printf "%s-admin-token" (include "modelgate.fullname" .)) .Values.adminToken.existingSecret }}
{{- end }}

{{/* Where both components read the admin token. */}}
{{- define "modelgate.adminTokenFile" -}}
{{- printf "/etc/modelgate/admin-token/%s" .Values.adminToken.secretKey }}
{{- end }}

{{/* The operator's settings ConfigMap (`--settings-configmap`). */}}
{{- define "modelgate.settingsConfigMapName" -}}
{{- printf "%s-settings" (include "modelgate.fullname" .) }}
{{- end }}

{{/* Base name of the snapshot Secrets (`--table-secret`); parts are "<base>-1" … "<base>-7". */}}
{{- define "modelgate.tableSecretName" -}}
{{- printf "%s-routing-table" (include "modelgate.fullname" .) }}
{{- end }}

{{/* Every snapshot Secret name, base first, as a list (the operator writes at most 8). */}}
{{- define "modelgate.tableSecretNames" -}}
{{- $base := include "modelgate.tableSecretName" . }}
{{- $names := list $base }}
{{- range $i := untilStep 1 8 1 }}
{{- $names = append $names (printf "%s-%d" $base $i) }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* The Lease the operator replicas elect a leader on. */}}
{{- define "modelgate.leaseName" -}}
{{- printf "%s-operator" (include "modelgate.fullname" .) }}
{{- end }}

{{/* The in-cluster DNS name of the data-plane Service. */}}
{{- define "modelgate.dataplane.serviceHost" -}}
{{- printf "%s.%s.svc" (include "modelgate.dataplane.fullname" .) .Release.Namespace }}
{{- end }}

{{/* The Secret holding the admin port's certificate (tls.crt, tls.key, ca.crt). */}}
{{- define "modelgate.adminTLS.secretName" -}}
{{- default (printf "%s-admin-tls" (include "modelgate.dataplane.fullname" .)) .Values.dataplane.adminTLS.secretName }}
{{- end }}

{{/* The Secret whose ca.crt the operator verifies the data planes against. */}}
{{- define "modelgate.adminTLS.caSecretName" -}}
{{- default (include "modelgate.adminTLS.secretName" .) .Values.dataplane.adminTLS.caSecretName }}
{{- end }}

{{/* The name the operator expects in the data planes' certificates. */}}
{{- define "modelgate.adminTLS.serverName" -}}
{{- default (include "modelgate.dataplane.serviceHost" .) .Values.dataplane.adminTLS.serverName }}
{{- end }}

{{/*
Seconds a terminating data-plane pod gets: the preStop pause (endpoints drop the pod
meanwhile), then --drain-seconds for requests and streams in flight, plus a margin.
*/}}
{{- define "modelgate.dataplane.terminationGracePeriodSeconds" -}}
{{- add .Values.dataplane.shutdown.preStopSleepSeconds .Values.dataplane.shutdown.drainSeconds 10 }}
{{- end }}

{{/* The pod security context every pod of the chart runs with. */}}
{{- define "modelgate.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/* The container security context every container of the chart runs with. */}}
{{- define "modelgate.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/*
The RouterSettings document of the settings ConfigMap: the `settings` values, leaving
out what is unset so the operator's defaults apply, and `namespaces` from
watchNamespaces.
*/}}
{{- define "modelgate.settings" -}}
{{- $s := .Values.settings }}
{{- $out := dict "apiVersion" "modelgate.dev/v1alpha1" "kind" "RouterSettings" }}
{{- with $s.routingStrategy }}{{ $_ := set $out "routingStrategy" . }}{{ end }}
{{- if not (kindIs "invalid" $s.latencyBuffer) }}{{ $_ := set $out "latencyBuffer" $s.latencyBuffer }}{{ end }}
{{- if not (kindIs "invalid" $s.retries) }}{{ $_ := set $out "retries" $s.retries }}{{ end }}
{{- $timeouts := dict }}
{{- with (dig "timeouts" "request" "" $s) }}{{ $_ := set $timeouts "request" . }}{{ end }}
{{- $stream := dict }}
{{- with (dig "timeouts" "stream" "firstByte" "" $s) }}{{ $_ := set $stream "firstByte" . }}{{ end }}
{{- with (dig "timeouts" "stream" "idle" "" $s) }}{{ $_ := set $stream "idle" . }}{{ end }}
{{- if $stream }}{{ $_ := set $timeouts "stream" $stream }}{{ end }}
{{- if $timeouts }}{{ $_ := set $out "timeouts" $timeouts }}{{ end }}
{{- $cooldown := dict }}
{{- $allowedFails := dig "cooldown" "allowedFails" nil $s }}
{{- if not (kindIs "invalid" $allowedFails) }}{{ $_ := set $cooldown "allowedFails" $allowedFails }}{{ end }}
{{- with (dig "cooldown" "cooldownTime" "" $s) }}{{ $_ := set $cooldown "cooldownTime" . }}{{ end }}
{{- if $cooldown }}{{ $_ := set $out "cooldown" $cooldown }}{{ end }}
{{- with $s.fallbacks }}{{ $_ := set $out "fallbacks" . }}{{ end }}
{{- with $s.contextWindowFallbacks }}{{ $_ := set $out "contextWindowFallbacks" . }}{{ end }}
{{- if not (kindIs "invalid" $s.dropParams) }}{{ $_ := set $out "dropParams" $s.dropParams }}{{ end }}
{{- if not (kindIs "invalid" $s.maxRequestBodyBytes) }}{{ $_ := set $out "maxRequestBodyBytes" $s.maxRequestBodyBytes }}{{ end }}
{{- range $field := list "masterKey" "redisUrl" }}
{{- $name := dig $field "secretKeyRef" "name" "" $s }}
{{- if $name }}
{{- $key := dig $field "secretKeyRef" "key" "" $s | required (printf "settings.%s.secretKeyRef.key is required when its name is set" $field) }}
{{- $_ := set $out $field (dict "secretKeyRef" (dict "name" $name "key" $key)) }}
{{- end }}
{{- end }}
{{- with .Values.watchNamespaces }}{{ $_ := set $out "namespaces" . }}{{ end }}
{{- with $s.sharedModels }}{{ $_ := set $out "sharedModels" . }}{{ end }}
{{- toYaml $out }}
{{- end }}
