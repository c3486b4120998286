"""Hand-written, APPROXIMATE schemas for the three kinds we deploy whose CRDs
are not vendored in ../shared/schemas: cert-manager ClusterIssuer, Strimzi
KafkaConnect and KafkaConnector. They cover only the fields we use (strict:
unknown fields fail) and their basic types, written from the projects'
API references; they are not the upstream openAPIV3Schema. Vendor the real
CRDs into shared/schemas to replace them."""

STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
SCALAR_MAP = {"type": "object", "additionalProperties": {"type": ["string", "integer", "number", "boolean"]}}
RES = {"type": "object", "additionalProperties": False, "properties": {
    "requests": {"type": "object"}, "limits": {"type": "object"}}}
SECCTX = {"type": "object"}  # checked by kubernetes-validate shapes elsewhere; kept loose here
META = {"type": "object", "required": ["name"], "properties": {"name": STR}}


def obj(props, required=()):
    return {"type": "object", "additionalProperties": False, "properties": props, "required": list(required)}


CLUSTER_ISSUER = obj({
    "apiVersion": {"enum": ["cert-manager.io/v1"]}, "kind": {"enum": ["ClusterIssuer"]}, "metadata": META,
    "spec": obj({"acme": obj({
        "server": {"type": "string", "pattern": "^https://"}, "email": STR,
        "privateKeySecretRef": obj({"name": STR, "key": STR}, ["name"]),
        "skipTLSVerify": BOOL,
        "solvers": {"type": "array", "minItems": 1, "items": obj({
            "selector": {"type": "object"},
            "http01": obj({
                "ingress": {"type": "object"},
                "gatewayHTTPRoute": obj({
                    "parentRefs": {"type": "array", "minItems": 1, "items": obj({
                        "name": STR, "namespace": STR, "kind": {"enum": ["Gateway"]},
                        "group": STR, "sectionName": STR, "port": INT}, ["name"])},
                    "labels": {"type": "object"}, "serviceType": STR}),
            }),
            "dns01": {"type": "object"}})}}, ["server", "privateKeySecretRef", "solvers"])}, ["acme"]),
}, ["apiVersion", "kind", "metadata", "spec"])

KAFKA_CONNECT = obj({
    "apiVersion": {"enum": ["kafka.strimzi.io/v1"]}, "kind": {"enum": ["KafkaConnect"]}, "metadata": META,
    "spec": obj({
        "version": STR, "replicas": {"type": "integer", "minimum": 0}, "image": STR,
        "bootstrapServers": STR, "groupId": STR, "configStorageTopic": STR,
        "offsetStorageTopic": STR, "statusStorageTopic": STR,
        "config": SCALAR_MAP, "resources": RES,
        "tls": {"type": "object"}, "authentication": {"type": "object"},
        "build": obj({
            "output": obj({"type": {"enum": ["docker", "imagestream"]}, "image": STR, "pushSecret": STR,
                           "additionalKanikoOptions": {"type": "array"}}, ["type", "image"]),
            "plugins": {"type": "array", "items": obj({
                "name": STR, "artifacts": {"type": "array", "minItems": 1, "items": obj({
                    "type": {"enum": ["jar", "tgz", "zip", "maven", "other"]}, "url": {"type": "string", "pattern": "^https://"},
                    "sha512sum": STR, "fileName": STR, "insecure": BOOL,
                    "group": STR, "artifact": STR, "version": STR, "repository": STR}, ["type"])}}, ["name", "artifacts"])},
        }, ["output", "plugins"]),
        "template": {"type": "object"}, "metricsConfig": {"type": "object"}, "logging": {"type": "object"},
        "jvmOptions": {"type": "object"}, "rack": {"type": "object"},
    }, ["bootstrapServers", "groupId", "configStorageTopic", "offsetStorageTopic", "statusStorageTopic"]),
}, ["apiVersion", "kind", "metadata", "spec"])

KAFKA_CONNECTOR = obj({
    "apiVersion": {"enum": ["kafka.strimzi.io/v1"]}, "kind": {"enum": ["KafkaConnector"]},
    "metadata": {"type": "object", "required": ["name", "labels"], "properties": {
        "name": STR, "labels": {"type": "object", "required": ["strimzi.io/cluster"]}}},
    "spec": obj({
        "class": STR, "tasksMax": {"type": "integer", "minimum": 1}, "autoRestart": {"type": "object"},
        "config": SCALAR_MAP, "state": {"enum": ["running", "paused", "stopped"]},
        "listOffsets": {"type": "object"}, "alterOffsets": {"type": "object"}, "version": STR,
    }, ["class", "config"]),
}, ["apiVersion", "kind", "metadata", "spec"])

SCHEMAS = {
    ("cert-manager.io/v1", "ClusterIssuer"): CLUSTER_ISSUER,
    ("kafka.strimzi.io/v1", "KafkaConnect"): KAFKA_CONNECT,
    ("kafka.strimzi.io/v1", "KafkaConnector"): KAFKA_CONNECTOR,
}
