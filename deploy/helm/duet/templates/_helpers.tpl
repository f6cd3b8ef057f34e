{{/* Names */}}
{{- define "duet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "duet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "duet.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "duet.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<service>"; call with (dict "root" $ "service" "clock") */}}
{{- define "duet.component" -}}
{{- printf "%s-%s" (include "duet.fullname" .root) .service | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "duet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: duet
{{ include "duet.selectorLabels" . }}
{{- end -}}

{{- define "duet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "duet.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .service }}
{{- end -}}

{{- define "duet.image" -}}
{{- $img := .root.Values.image -}}
{{- printf "%s/%s-%s:%s" $img.registry $img.repository .service (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/* SIGTERM drains calls for DUET_DRAIN_TIMEOUT_MS; the pod gets that plus 15 s. */}}
{{- define "duet.terminationGrace" -}}
{{- add (div (int .drainTimeoutMs) 1000) 15 -}}
{{- end -}}

{{/* The environment every service reads (packages/runtime/src/config.ts commonConfig). */}}
{{- define "duet.commonEnv" -}}
- name: DUET_NATS_URL
  value: {{ .root.Values.nats.url | quote }}
- name: DUET_JETSTREAM_REPLICAS
  value: {{ .root.Values.nats.jetstreamReplicas | quote }}
{{- if .root.Values.nats.credentials.existingSecret }}
- name: DUET_NATS_CREDS
  value: {{ printf "/etc/duet/nats/%s" .root.Values.nats.credentials.key | quote }}
{{- end }}
- name: DUET_HTTP_PORT
  value: {{ .root.Values.ports.http | quote }}
- name: DUET_GRPC_PORT
  value: {{ .root.Values.ports.grpc | quote }}
- name: DUET_BIND_HOST
  value: "0.0.0.0"
- name: DUET_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: DUET_DRAIN_TIMEOUT_MS
  value: {{ .values.drainTimeoutMs | quote }}
{{- range $k, $v := .root.Values.commonEnv }}
- name: {{ $k }}
  value: {{ $v | quote }}
{{- end }}
{{- end -}}

{{/* Volumes shared by every pod: /tmp, NATS credentials, a custom model volume. */}}
{{- define "duet.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if .root.Values.nats.credentials.existingSecret }}
- name: nats-creds
  secret:
    secretName: {{ .root.Values.nats.credentials.existingSecret }}
{{- end }}
{{- if .root.Values.models.volume }}
- name: models
{{- toYaml .root.Values.models.volume | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "duet.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .root.Values.nats.credentials.existingSecret }}
- name: nats-creds
  mountPath: /etc/duet/nats
  readOnly: true
{{- end }}
{{- if .root.Values.models.volume }}
- name: models
  mountPath: {{ .root.Values.models.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Probes on the service's ops port (/healthz live, /readyz ready to take calls). */}}
{{- define "duet.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .root.Values.probes.startup.periodSeconds }}
  failureThreshold: {{ .root.Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .root.Values.probes.liveness.periodSeconds }}
  failureThreshold: {{ .root.Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ .root.Values.probes.readiness.periodSeconds }}
  failureThreshold: {{ .root.Values.probes.readiness.failureThreshold }}
{{- end -}}

{{- define "duet.ports" -}}
- name: http
  containerPort: {{ .root.Values.ports.http }}
  protocol: TCP
- name: grpc
  containerPort: {{ .root.Values.ports.grpc }}
  protocol: TCP
{{- end -}}
