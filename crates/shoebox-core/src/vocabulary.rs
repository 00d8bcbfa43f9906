//! A built-in vocabulary of everyday photo concepts for CLIP zero-shot tagging, and the prompt each
//! concept is embedded as.

/// Everyday photo concepts: colors and basic shapes (what the test fixtures show), people, animals,
/// places, weather and time of day, events, food, vehicles, objects, documents and screens.
/// Lowercase, each once.
#[rustfmt::skip]
pub const CONCEPTS: &[&str] = &[
    // colors
    "red", "green", "blue", "yellow", "orange", "purple", "pink", "black", "white", "brown",
    "gray",
    // shapes
    "circle", "square", "triangle", "star", "heart",
    // people
    "person", "man", "woman", "child", "baby", "toddler", "boy", "girl", "teenager", "family",
    "couple", "friends", "group of people", "crowd", "portrait", "selfie", "elderly person",
    "student", "athlete", "musician", "dancer", "chef", "doctor", "bride", "groom", "face",
    // animals
    "dog", "puppy", "cat", "kitten", "bird", "duck", "chicken", "horse", "cow", "sheep", "goat",
    "pig", "rabbit", "fish", "turtle", "snake", "frog", "butterfly", "bee", "insect", "deer",
    "bear", "lion", "tiger", "elephant", "giraffe", "zebra", "monkey", "fox", "wolf",
    "squirrel", "penguin", "dolphin", "whale", "shark", "pet",
    // nature and places
    "beach", "ocean", "lake", "river", "waterfall", "mountain", "hill", "forest", "jungle",
    "desert", "field", "garden", "park", "farm", "island", "cave", "volcano", "countryside",
    "landscape", "city", "skyline", "street", "road", "highway", "bridge", "building",
    "skyscraper", "house", "apartment", "cabin", "castle", "church", "temple", "mosque",
    "cathedral", "museum", "library", "school", "classroom", "office", "hospital", "restaurant",
    "cafe", "bar", "kitchen", "living room", "bedroom", "bathroom", "garage", "backyard",
    "playground", "stadium", "gym", "swimming pool", "airport", "train station", "harbor",
    "market", "supermarket", "shop", "shopping mall", "parking lot", "lighthouse", "tower",
    "monument", "statue", "fountain", "village", "construction site", "stage", "zoo",
    "aquarium", "amusement park", "pier", "trail", "palm tree", "architecture", "underwater",
    // sky weather seasons time
    "sunset", "sunrise", "night", "sky", "clouds", "rain", "snow", "fog", "storm", "lightning",
    "rainbow", "moon", "stars", "sun", "ice", "cherry blossoms", "winter", "summer", "autumn",
    "fireworks", "night sky", "snowman",
    // events and activities
    "birthday", "birthday cake", "wedding", "party", "graduation", "christmas", "christmas
    tree", "halloween", "costume", "thanksgiving", "new year's eve", "concert", "festival",
    "parade", "picnic", "barbecue", "camping", "hiking", "road trip", "vacation", "sports",
    "football", "soccer", "basketball", "baseball", "tennis", "golf", "skiing", "snowboarding",
    "surfing", "swimming", "cycling", "running", "yoga", "fishing", "skateboarding", "baby
    shower", "meeting", "ceremony", "dinner", "breakfast", "lunch", "board game", "video game",
    "cooking",
    // food and drink
    "food", "meal", "pizza", "burger", "sandwich", "salad", "pasta", "sushi", "bread", "cake",
    "dessert", "ice cream", "chocolate", "fruit", "apple", "banana", "strawberry", "vegetables",
    "coffee", "tea", "wine", "beer", "cocktail", "drink", "steak", "eggs", "cheese", "donut",
    "cupcake",
    // vehicles
    "car", "truck", "bus", "train", "bicycle", "motorcycle", "boat", "ship", "airplane",
    "helicopter", "tractor", "taxi", "scooter", "sailboat", "hot air balloon",
    // objects
    "phone", "laptop", "computer", "television", "camera", "headphones", "watch", "clock",
    "book", "newspaper", "notebook", "chair", "sofa", "table", "bed", "desk", "window", "door",
    "bookshelf", "toy", "teddy bear", "doll", "ball", "balloon", "gift", "candle", "flower",
    "rose", "tulip", "sunflower", "tree", "plant", "cactus", "grass", "bouquet", "vase", "mug",
    "glass", "umbrella", "hat", "shoes", "dress", "bag", "backpack", "suitcase", "sunglasses",
    "glasses", "jewelry", "guitar", "piano", "painting", "drawing", "sculpture", "graffiti",
    "poster", "street sign", "traffic light", "flag", "key", "money", "kite", "tent",
    "fireplace", "christmas lights", "shadow", "reflection", "silhouette",
    // documents and screens
    "receipt", "screenshot", "document", "invoice", "letter", "contract", "passport", "id card",
    "ticket", "boarding pass", "business card", "menu", "handwritten note", "whiteboard",
    "blackboard", "chart", "graph", "diagram", "spreadsheet", "text", "meme", "qr code",
    "barcode", "calendar", "recipe", "certificate", "handwriting", "computer screen", "phone
    screen", "map", "x-ray", "license plate",
];

/// The zero-shot prompt for a concept: "a photo of a dog", "a photo of an elephant".
pub fn prompt(concept: &str) -> String {
    let article = match concept.chars().next() {
        Some(c) if "aeiouAEIOU".contains(c) => "an",
        _ => "a",
    };
    format!("a photo of {article} {concept}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn concepts_are_unique_lowercase_and_sized() {
        let set: HashSet<&str> = CONCEPTS.iter().copied().collect();
        assert_eq!(set.len(), CONCEPTS.len(), "duplicate concept");
        assert!(
            (300..=400).contains(&CONCEPTS.len()),
            "{} concepts",
            CONCEPTS.len()
        );
        for c in CONCEPTS {
            assert_eq!(*c, c.to_lowercase(), "{c:?} is not lowercase");
            assert_eq!(*c, c.trim(), "{c:?} has surrounding spaces");
            assert!(!c.is_empty());
        }
    }

    #[test]
    fn fixture_colors_shapes_and_common_concepts_are_in() {
        for c in [
            "red",
            "green",
            "blue",
            "yellow",
            "orange",
            "purple",
            "pink",
            "black",
            "white",
            "brown",
            "gray",
            "circle",
            "square",
            "triangle",
            "beach",
            "dog",
            "cat",
            "birthday",
            "snow",
            "receipt",
            "screenshot",
            "document",
            "food",
            "sunset",
            "car",
            "mountain",
            "forest",
            "city",
            "night",
            "baby",
            "wedding",
            "selfie",
            "whiteboard",
            "flower",
        ] {
            assert!(CONCEPTS.contains(&c), "{c} missing");
        }
    }

    #[test]
    fn prompt_uses_the_right_article() {
        assert_eq!(prompt("dog"), "a photo of a dog");
        assert_eq!(prompt("elephant"), "a photo of an elephant");
        assert_eq!(prompt("orange"), "a photo of an orange");
        assert_eq!(prompt("umbrella"), "a photo of an umbrella");
        assert_eq!(prompt("red"), "a photo of a red");
    }
}
