{{/* Names: <release>-millstream-<component>, cut to the 63 characters a label value allows. */}}
{{- define "millstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "millstream.hub" -}}{{ include "millstream.fullname" . }}-hub{{- end -}}
{{- define "millstream.relay" -}}{{ include "millstream.fullname" . }}-relay{{- end -}}
{{- define "millstream.mosquitto" -}}{{ include "millstream.fullname" . }}-mosquitto{{- end -}}
{{- define "millstream.migrate" -}}{{ include "millstream.fullname" . }}-migrate{{- end -}}

{{- define "millstream.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: millstream
{{- end -}}

{{/* Selector labels of one component: include with (list $ "hub"). */}}
{{- define "millstream.selector" -}}
app.kubernetes.io/name: {{ (index . 0).Chart.Name }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "millstream.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "millstream.mqttUrl" -}}
{{- if .Values.mqtt.url -}}
{{ .Values.mqtt.url }}
{{- else if .Values.mosquitto.enabled -}}
mqtt://{{ include "millstream.mosquitto" . }}:1883
{{- else -}}
{{ fail "mqtt.url is empty and mosquitto.enabled is false: set mqtt.url to your broker (docs/kubernetes.md)" }}
{{- end -}}
{{- end -}}

{{- define "millstream.storageUrl" -}}
{{- $pg := .Values.postgresql -}}
postgresql://{{ $pg.user }}@{{ $pg.host }}:{{ $pg.port }}/{{ $pg.database }}{{ if $pg.options }}?{{ $pg.options }}{{ end }}
{{- end -}}

{{/* Pod security shared by the hub's pods: the image's user, nothing writable but /tmp. */}}
{{- define "millstream.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "millstream.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/*
The environment every hub process needs: config file, storage and the secrets, each from an
existing Secret (never a value in values.yaml).
*/}}
{{- define "millstream.hubEnv" -}}
- name: MILLSTREAM_CONFIG
  value: /etc/millstream/hub.yaml
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "postgresql.password.secretName is required" .Values.postgresql.password.secretName }}
      key: {{ required "postgresql.password.key is required" .Values.postgresql.password.key }}
- name: MQTT_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "mqtt.hubPassword.secretName is required" .Values.mqtt.hubPassword.secretName }}
      key: {{ required "mqtt.hubPassword.key is required" .Values.mqtt.hubPassword.key }}
- name: MILLSTREAM_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ required "hubSecret.secretName is required" .Values.hubSecret.secretName }}
      key: {{ required "hubSecret.jwtSecretKey is required" .Values.hubSecret.jwtSecretKey }}
{{- if .Values.redis.enabled }}
{{- $r := .Values.redis }}
{{- if $r.password.secretName }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $r.password.secretName }}
      key: {{ required "redis.password.key is required" $r.password.key }}
# Kubernetes puts the password into the URL ($(VAR) refers to the variable above); a password
# with URL-special characters must be percent-encoded in its Secret.
- name: MILLSTREAM_REDIS__URL
  value: "{{ if $r.tls }}rediss{{ else }}redis{{ end }}://:$(REDIS_PASSWORD)@{{ $r.host }}:{{ $r.port }}/{{ $r.db }}"
{{- end }}
{{- end }}
{{- end -}}

{{- define "millstream.configVolume" -}}
- name: config
  configMap:
    name: {{ include "millstream.hub" . }}
- name: tmp
  emptyDir: {}
{{- if .Values.mqtt.caSecretName }}
- name: mqtt-ca
  secret:
    secretName: {{ .Values.mqtt.caSecretName }}
    items:
      - {key: ca.crt, path: ca.crt}
{{- end }}
{{- end -}}

{{- define "millstream.configMounts" -}}
- name: config
  mountPath: /etc/millstream
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.mqtt.caSecretName }}
- name: mqtt-ca
  mountPath: /etc/millstream-mqtt-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod anti-affinity of one component: include with (list $ "hub" "soft"|"hard"). */}}
{{- define "millstream.antiAffinity" -}}
{{- $ctx := index . 0 -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "millstream.selector" (list $ctx (index . 1)) | fromYaml)) -}}
podAntiAffinity:
{{- if eq (index . 2) "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - {{ toYaml $term | nindent 6 | trim }}
{{- else if eq (index . 2) "soft" }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        {{- toYaml $term | nindent 8 }}
{{- else }}
{{- fail "antiAffinity must be soft or hard" }}
{{- end }}
{{- end -}}
