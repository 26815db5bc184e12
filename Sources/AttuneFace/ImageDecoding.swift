import CPNG
import CTurboJPEG
import Foundation

/// An 8-bit RGB image, rows top to bottom.
public struct RGBImage: Sendable {
    public let width: Int
    public let height: Int
    /// `width × height × 3` bytes: R, G, B per pixel.
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "an RGB image holds width × height × 3 bytes")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// Luma (ITU-R BT.601) at integer coordinates, 0…255.
    @inline(__always)
    func luma(_ x: Int, _ y: Int) -> Float {
        let index = (y * width + x) * 3
        return 0.299 * Float(pixels[index]) + 0.587 * Float(pixels[index + 1]) + 0.114 * Float(pixels[index + 2])
    }
}

/// How large a frame may be (`face.max_frame_bytes`, `face.max_frame_pixels`).
public struct ImageLimits: Sendable, Equatable {
    public var maxBytes = 2_000_000
    public var maxPixels = 4_000_000

    public init() {}
}

/// Why a frame could not be read: `unsupported` (not JPEG or PNG, or not base64), `tooLarge`
/// (over a limit, found before decoding), `corrupt` (a JPEG or PNG that does not decode).
public struct ImageError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case unsupported, tooLarge, corrupt }
    public let kind: Kind
    public let description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

/// Decodes camera frames: JPEG with libjpeg-turbo (the TurboJPEG API), PNG with libpng's
/// simplified API. Both read the header first, so an image over `maxPixels` is refused before a
/// byte of it is decoded.
public struct ImageDecoder: Sendable {
    public let limits: ImageLimits

    public init(limits: ImageLimits = .init()) {
        self.limits = limits
    }

    /// The bytes of a frame sent as a `data:image/...;base64,` URL or as bare base64.
    public func frameBytes(_ text: String) throws(ImageError) -> [UInt8] {
        var payload = Substring(text)
        if payload.hasPrefix("data:") {
            guard let comma = payload.firstIndex(of: ",") else { throw ImageError(.unsupported, "a data URL needs a comma before its data") }
            let header = payload[payload.index(payload.startIndex, offsetBy: 5)..<comma].lowercased()
            guard header.hasSuffix(";base64") else { throw ImageError(.unsupported, "only base64 data URLs are read") }
            let type = header.dropLast(7)
            guard ["image/jpeg", "image/jpg", "image/png"].contains(type) else {
                throw ImageError(.unsupported, "frames are image/jpeg or image/png, not \(type.prefix(40))")
            }
            payload = payload[payload.index(after: comma)...]
        }
        // Base64 grows data by a third: refuse an oversized frame before decoding it.
        guard payload.utf8.count <= (limits.maxBytes / 3 + 1) * 4 + 4 else {
            throw ImageError(.tooLarge, "the frame is over \(limits.maxBytes) bytes (setting face.max_frame_bytes)")
        }
        guard let data = Data(base64Encoded: String(payload), options: .ignoreUnknownCharacters), !data.isEmpty else {
            throw ImageError(.unsupported, "the frame is not base64 data")
        }
        return [UInt8](data)
    }

    public func decode(_ bytes: [UInt8]) throws(ImageError) -> RGBImage {
        guard !bytes.isEmpty else { throw ImageError(.unsupported, "empty frame") }
        guard bytes.count <= limits.maxBytes else {
            throw ImageError(.tooLarge, "the frame is \(bytes.count) bytes; at most \(limits.maxBytes) (setting face.max_frame_bytes)")
        }
        if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return try decodeJPEG(bytes) }
        if bytes.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return try decodePNG(bytes) }
        throw ImageError(.unsupported, "frames are JPEG or PNG images")
    }

    private func checkSize(_ width: Int, _ height: Int) throws(ImageError) {
        guard width > 0, height > 0 else { throw ImageError(.corrupt, "the image has no pixels") }
        guard width * height <= limits.maxPixels else {
            throw ImageError(.tooLarge, "the image is \(width)x\(height) pixels; at most \(limits.maxPixels) (setting face.max_frame_pixels)")
        }
    }

    private func decodeJPEG(_ bytes: [UInt8]) throws(ImageError) -> RGBImage {
        guard let handle = tjInitDecompress() else { throw ImageError(.corrupt, "libjpeg-turbo could not start") }
        defer { tjDestroy(handle) }
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let header = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(handle, $0.baseAddress, UInt($0.count), &width, &height, &subsampling, &colorspace)
        }
        guard header == 0 else { throw ImageError(.corrupt, "not a readable JPEG: \(Self.message(handle))") }
        try checkSize(Int(width), Int(height))
        var pixels = [UInt8](repeating: 0, count: Int(width) * Int(height) * 3)
        let status = bytes.withUnsafeBufferPointer { source in
            pixels.withUnsafeMutableBufferPointer { target in
                tjDecompress2(handle, source.baseAddress, UInt(source.count), target.baseAddress, width, 0, height, Int32(TJPF_RGB.rawValue), 0)
            }
        }
        // A warning (a truncated scan, say) still gives an image; only errors refuse it.
        if status != 0, tjGetErrorCode(handle) == Int32(TJERR_FATAL.rawValue) {
            throw ImageError(.corrupt, "the JPEG does not decode: \(Self.message(handle))")
        }
        return RGBImage(width: Int(width), height: Int(height), pixels: pixels)
    }

    private static func message(_ handle: tjhandle) -> String {
        tjGetErrorStr2(handle).map { String(cString: $0) } ?? "unknown error"
    }

    private func decodePNG(_ bytes: [UInt8]) throws(ImageError) -> RGBImage {
        var image = png_image()
        let begun = bytes.withUnsafeBytes { attune_png_begin(&image, $0.baseAddress, $0.count) }
        guard begun != 0 else { throw ImageError(.corrupt, "not a readable PNG: \(Self.message(&image))") }
        let (width, height) = (Int(image.width), Int(image.height))
        do {
            try checkSize(width, height)
        } catch {
            png_image_free(&image)
            throw error
        }
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let finished = pixels.withUnsafeMutableBytes { attune_png_finish_rgb(&image, $0.baseAddress) }
        guard finished != 0 else { throw ImageError(.corrupt, "the PNG does not decode: \(Self.message(&image))") }
        return RGBImage(width: width, height: height, pixels: pixels)
    }

    private static func message(_ image: inout png_image) -> String {
        withUnsafeBytes(of: &image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}

/// JPEG encoding with libjpeg-turbo, for test and benchmark frames.
public enum JPEGEncoder {
    public static func encode(_ image: RGBImage, quality: Int = 80) throws(ImageError) -> [UInt8] {
        guard let handle = tjInitCompress() else { throw ImageError(.corrupt, "libjpeg-turbo could not start") }
        defer { tjDestroy(handle) }
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let status = image.pixels.withUnsafeBufferPointer {
            tjCompress2(
                handle, $0.baseAddress, Int32(image.width), 0, Int32(image.height), Int32(TJPF_RGB.rawValue), &output, &size,
                Int32(TJSAMP_420.rawValue), Int32(min(max(quality, 1), 100)), 0)
        }
        defer { if let output { tjFree(output) } }
        guard status == 0, let output else { throw ImageError(.corrupt, "JPEG encoding failed") }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }
}

/// PNG encoding with libpng, for tests.
public enum PNGEncoder {
    public static func encode(_ image: RGBImage) throws(ImageError) -> [UInt8] {
        var size = 0
        _ = image.pixels.withUnsafeBytes { attune_png_write_rgb(nil, &size, $0.baseAddress, UInt32(image.width), UInt32(image.height)) }
        guard size > 0 else { throw ImageError(.corrupt, "PNG encoding failed") }
        var output = [UInt8](repeating: 0, count: size)
        let status = output.withUnsafeMutableBytes { target in
            image.pixels.withUnsafeBytes { attune_png_write_rgb(target.baseAddress, &size, $0.baseAddress, UInt32(image.width), UInt32(image.height)) }
        }
        guard status != 0 else { throw ImageError(.corrupt, "PNG encoding failed") }
        return Array(output.prefix(size))
    }
}

extension RGBImage {
    /// A grayscale image as RGB.
    public init(gray: [UInt8], width: Int, height: Int) {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for (index, value) in gray.enumerated() {
            pixels[index * 3] = value
            pixels[index * 3 + 1] = value
            pixels[index * 3 + 2] = value
        }
        self.init(width: width, height: height, pixels: pixels)
    }

    /// A `width × height` frame with this image scaled (bilinear) to `side × side` at (`x`, `y`)
    /// on a mid-grey background: how benchmarks and tests turn FER2013's 48×48 crops into
    /// camera-sized frames for the detector.
    public func placed(inFrameOf width: Int, _ height: Int, side: Int, x: Int, y: Int) -> RGBImage {
        var pixels = [UInt8](repeating: 128, count: width * height * 3)
        for v in 0..<side where y + v >= 0 && y + v < height {
            let sy = min(max((Double(v) + 0.5) * Double(self.height) / Double(side) - 0.5, 0), Double(self.height - 1))
            let y0 = Int(sy), y1 = min(y0 + 1, self.height - 1), fy = sy - Double(y0)
            for u in 0..<side where x + u >= 0 && x + u < width {
                let sx = min(max((Double(u) + 0.5) * Double(self.width) / Double(side) - 0.5, 0), Double(self.width - 1))
                let x0 = Int(sx), x1 = min(x0 + 1, self.width - 1), fx = sx - Double(x0)
                for channel in 0..<3 {
                    func at(_ px: Int, _ py: Int) -> Double { Double(self.pixels[(py * self.width + px) * 3 + channel]) }
                    let value = (at(x0, y0) * (1 - fx) + at(x1, y0) * fx) * (1 - fy) + (at(x0, y1) * (1 - fx) + at(x1, y1) * fx) * fy
                    pixels[((y + v) * width + x + u) * 3 + channel] = UInt8(min(max(value.rounded(), 0), 255))
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
