/** A Kubernetes object as read from the environment repository. */
export interface ManifestObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

/** Where an object came from, for error messages: `clusters/prod/web.yaml document 2`. */
export interface ManifestSource {
  /** Path relative to the repository root, with forward slashes. */
  file: string;
  /** 1-based index of the YAML document within the file. */
  document: number;
  /** 1-based index within a `kind: List` document, when the object came from one. */
  item?: number;
}

export interface LoadedManifest {
  object: ManifestObject;
  source: ManifestSource;
}

/** What identifies an object in the cluster, as recorded in results and the inventory. */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace?: string;
  name: string;
}
