"""The subset of Shopify's Admin GraphQL schema (SDL) the simulator serves."""

SDL = """
scalar DateTime
scalar URL
scalar UnsignedInt64

interface Node {
  id: ID!
}

interface Media {
  id: ID!
  alt: String
  mediaContentType: MediaContentType!
  status: MediaStatus!
  mediaErrors: [MediaError!]!
  mediaWarnings: [MediaWarning!]!
  preview: MediaPreviewImage
}

interface File {
  id: ID!
  alt: String
  createdAt: DateTime!
  updatedAt: DateTime!
  fileStatus: FileStatus!
  fileErrors: [FileError!]!
  preview: MediaPreviewImage
}

enum MediaStatus { UPLOADED PROCESSING READY FAILED }
enum FileStatus { UPLOADED PROCESSING READY FAILED }
enum MediaPreviewImageStatus { UPLOADED PROCESSING READY FAILED }
enum MediaContentType { IMAGE VIDEO EXTERNAL_VIDEO MODEL_3D }
enum FileContentType { IMAGE FILE VIDEO EXTERNAL_VIDEO MODEL_3D }
enum ProductStatus { ACTIVE ARCHIVED DRAFT }
enum ProductSortKeys { ID TITLE CREATED_AT UPDATED_AT PRODUCT_TYPE VENDOR RELEVANCE }
enum StagedUploadHttpMethodType { POST PUT }
enum StagedUploadTargetGenerateUploadResource {
  IMAGE FILE VIDEO MODEL_3D COLLECTION_IMAGE PRODUCT_IMAGE SHOP_IMAGE
  BULK_MUTATION_VARIABLES URL_REDIRECT_IMPORT RETURN_LABEL DISPUTE_FILE_UPLOAD
}
enum MediaErrorCode {
  UNKNOWN INVALID_SIGNED_URL IMAGE_DOWNLOAD_FAILURE IMAGE_PROCESSING_FAILURE
  MEDIA_TIMEOUT_ERROR UNSUPPORTED_IMAGE_FILE_TYPE INVALID_IMAGE_FILE_SIZE
  INVALID_IMAGE_ASPECT_RATIO INVALID_IMAGE_RESOLUTION FILE_STORAGE_LIMIT_EXCEEDED
  DUPLICATE_FILENAME_ERROR GENERIC_FILE_DOWNLOAD_FAILURE GENERIC_FILE_INVALID_SIZE
}
enum MediaWarningCode { MODEL_LARGE_PHYSICAL_SIZE MODEL_SMALL_PHYSICAL_SIZE }
enum FileErrorCode {
  UNKNOWN INVALID_SIGNED_URL IMAGE_DOWNLOAD_FAILURE IMAGE_PROCESSING_FAILURE
  MEDIA_TIMEOUT_ERROR UNSUPPORTED_IMAGE_FILE_TYPE INVALID_IMAGE_FILE_SIZE
  GENERIC_FILE_DOWNLOAD_FAILURE GENERIC_FILE_INVALID_SIZE
}
enum FilesErrorCode {
  INVALID FILE_DOES_NOT_EXIST NON_READY_STATE REFERENCE_TARGET_DOES_NOT_EXIST
  MISSING_ARGUMENTS TOO_MANY_ARGUMENTS UNSUPPORTED_MEDIA_TYPE_FOR_FILE_REFERENCE
  INVALID_IMAGE_SOURCE_URL FILENAME_ALREADY_EXISTS
}
enum CountPrecision { EXACT AT_LEAST }

type PageInfo {
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
  endCursor: String
}

type Count {
  count: Int!
  precision: CountPrecision!
}

type Image {
  id: ID
  url: URL!
  altText: String
  width: Int
  height: Int
}

type MediaError {
  code: MediaErrorCode!
  details: String
  message: String!
}

type MediaWarning {
  code: MediaWarningCode!
  message: String
}

type FileError {
  code: FileErrorCode!
  details: String
  message: String!
}

type MediaPreviewImage {
  image: Image
  status: MediaPreviewImageStatus!
}

type MediaImage implements Node & Media & File {
  id: ID!
  alt: String
  mediaContentType: MediaContentType!
  status: MediaStatus!
  mediaErrors: [MediaError!]!
  mediaWarnings: [MediaWarning!]!
  preview: MediaPreviewImage
  image: Image
  mimeType: String
  createdAt: DateTime!
  updatedAt: DateTime!
  fileStatus: FileStatus!
  fileErrors: [FileError!]!
}

type MediaEdge {
  cursor: String!
  node: Media!
}

type MediaConnection {
  edges: [MediaEdge!]!
  nodes: [Media!]!
  pageInfo: PageInfo!
}

type Product implements Node {
  id: ID!
  title: String!
  handle: String!
  status: ProductStatus!
  vendor: String!
  productType: String!
  tags: [String!]!
  createdAt: DateTime!
  updatedAt: DateTime!
  onlineStoreUrl: URL
  featuredMedia: Media
  mediaCount: Count
  media(
    first: Int, after: String, last: Int, before: String, reverse: Boolean = false
  ): MediaConnection!
}

type ProductEdge {
  cursor: String!
  node: Product!
}

type ProductConnection {
  edges: [ProductEdge!]!
  nodes: [Product!]!
  pageInfo: PageInfo!
}

type Shop implements Node {
  id: ID!
  name: String!
  myshopifyDomain: String!
  email: String!
  url: URL!
}

type Query {
  product(id: ID!): Product
  products(
    first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
    sortKey: ProductSortKeys = ID, query: String
  ): ProductConnection!
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  shop: Shop!
}

input StagedUploadInput {
  resource: StagedUploadTargetGenerateUploadResource!
  filename: String!
  mimeType: String!
  httpMethod: StagedUploadHttpMethodType = PUT
  fileSize: UnsignedInt64
}

type StagedUploadParameter {
  name: String!
  value: String!
}

type StagedMediaUploadTarget {
  url: URL
  resourceUrl: URL
  parameters: [StagedUploadParameter!]!
}

type UserError {
  field: [String!]
  message: String!
}

type FilesUserError {
  field: [String!]
  message: String!
  code: FilesErrorCode
}

type StagedUploadsCreatePayload {
  stagedTargets: [StagedMediaUploadTarget!]
  userErrors: [UserError!]!
}

input ProductUpdateInput {
  id: ID
  title: String
  handle: String
  vendor: String
  productType: String
  tags: [String!]
  status: ProductStatus
}

input CreateMediaInput {
  originalSource: String!
  alt: String
  mediaContentType: MediaContentType!
}

type ProductUpdatePayload {
  product: Product
  userErrors: [UserError!]!
}

input FileUpdateInput {
  id: ID!
  alt: String
  filename: String
  originalSource: String
  previewImageSource: String
  referencesToAdd: [ID!]
  referencesToRemove: [ID!]
}

input FileCreateInput {
  originalSource: String!
  alt: String
  contentType: FileContentType
  filename: String
}

type FileUpdatePayload {
  files: [File!]
  userErrors: [FilesUserError!]!
}

type FileCreatePayload {
  files: [File!]
  userErrors: [FilesUserError!]!
}

type FileDeletePayload {
  deletedFileIds: [ID!]
  userErrors: [FilesUserError!]!
}

type Mutation {
  stagedUploadsCreate(input: [StagedUploadInput!]!): StagedUploadsCreatePayload
  productUpdate(product: ProductUpdateInput, media: [CreateMediaInput!]): ProductUpdatePayload
  fileUpdate(files: [FileUpdateInput!]!): FileUpdatePayload
  fileCreate(files: [FileCreateInput!]!): FileCreatePayload
  fileDelete(fileIds: [ID!]!): FileDeletePayload
}
"""
