package sandbox

// Reference tables for the synthetic data: names, places and the clinical code systems (LOINC,
// SNOMED CT, RxNorm, CVX) with realistic values. They are read-only.

const (
	sysLOINC     = "http://loinc.org"
	sysSNOMED    = "http://snomed.info/sct"
	sysRxNorm    = "http://www.nlm.nih.gov/research/umls/rxnorm"
	sysCVX       = "http://hl7.org/fhir/sid/cvx"
	sysUCUM      = "http://unitsofmeasure.org"
	sysObsCat    = "http://terminology.hl7.org/CodeSystem/observation-category"
	sysCondCat   = "http://terminology.hl7.org/CodeSystem/condition-category"
	sysCondClin  = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	sysCondVer   = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	sysAllerClin = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	sysAllerVer  = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	sysActCode   = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	sysV2ID      = "http://terminology.hl7.org/CodeSystem/v2-0203"
	sysInterp    = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
	sysMedReqCat = "http://terminology.hl7.org/CodeSystem/medicationrequest-category"
	sysOrgType   = "http://terminology.hl7.org/CodeSystem/organization-type"
	sysNPI       = "http://hl7.org/fhir/sid/us-npi"
	sysMRN       = "urn:oid:2.16.840.1.113883.19.5"
	sysOrgID     = "urn:oid:2.16.840.1.113883.19.4"
)

var (
	givenFemale = []string{"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica",
		"Sarah", "Karen", "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly", "Emily", "Donna",
		"Michelle", "Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Rebecca", "Laura", "Helen", "Amy",
		"Anna", "Olivia", "Sofía", "Chloé", "Mei", "Aisha", "Priya", "Zoë", "Ingrid"}
	givenMale = []string{"James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas",
		"Christopher", "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul", "Andrew",
		"Joshua", "Kenneth", "Kevin", "Brian", "George", "Timothy", "Ronald", "Jason", "Edward", "Jeffrey",
		"Ryan", "José", "Luis", "Wei", "Omar", "Arjun", "Björn", "Mateo", "Kwame"}
	familyNames = []string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
		"Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
		"Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark",
		"Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Hill",
		"Flores", "Green", "O'Brien", "Müller", "Kowalski", "Okafor", "Chen", "Patel", "Nakamura", "Haddad"}
	streets = []string{"Main St", "Oak Ave", "Maple Dr", "Cedar Ln", "Elm St", "Pine Rd", "Washington Blvd",
		"Lake View Ct", "Hillcrest Way", "Sunset Blvd", "Park Pl", "River Rd", "Church St", "Mill Ln"}
	cities = []struct{ city, state, zip string }{
		{"Boston", "MA", "02118"}, {"Springfield", "MA", "01103"}, {"Worcester", "MA", "01608"},
		{"Cambridge", "MA", "02139"}, {"Lowell", "MA", "01852"}, {"Providence", "RI", "02903"},
		{"Hartford", "CT", "06103"}, {"Burlington", "VT", "05401"}, {"Portland", "ME", "04101"},
		{"Manchester", "NH", "03101"},
	}
	orgNames = []string{"Good Health Clinic", "Riverside Medical Center", "Lakeside Family Practice",
		"St. Mary's Community Hospital", "Northside Primary Care"}
)

// term is one coding of a clinical code system.
type term struct{ system, code, display string }

// vital signs and labs (LOINC, UCUM).
var (
	loincBPPanel   = term{sysLOINC, "85354-9", "Blood pressure panel with all children optional"}
	loincSystolic  = term{sysLOINC, "8480-6", "Systolic blood pressure"}
	loincDiastolic = term{sysLOINC, "8462-4", "Diastolic blood pressure"}
	loincHeartRate = term{sysLOINC, "8867-4", "Heart rate"}
	loincWeight    = term{sysLOINC, "29463-7", "Body weight"}
	loincHeight    = term{sysLOINC, "8302-2", "Body height"}
	loincBMI       = term{sysLOINC, "39156-5", "Body mass index (BMI) [Ratio]"}

	catVitalSigns = term{sysObsCat, "vital-signs", "Vital Signs"}
	catLaboratory = term{sysObsCat, "laboratory", "Laboratory"}
	catProblem    = term{sysCondCat, "problem-list-item", "Problem List Item"}
	catCommunity  = term{sysMedReqCat, "community", "Community"}
)

// labTest is a laboratory observation with its UCUM unit and normal range.
type labTest struct {
	term
	unit     string
	low, hi  float64 // reference range
	mean, sd float64 // distribution of generated values
	prec     int
}

var labTests = []labTest{
	{term{sysLOINC, "2339-0", "Glucose [Mass/volume] in Blood"}, "mg/dL", 70, 99, 98, 18, 0},
	{term{sysLOINC, "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"}, "%", 4, 5.6, 5.7, 0.8, 1},
	{term{sysLOINC, "2160-0", "Creatinine [Mass/volume] in Serum or Plasma"}, "mg/dL", 0.6, 1.3, 0.95, 0.2, 2},
	{term{sysLOINC, "2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"}, "mg/dL", 0, 200, 190, 30, 0},
}

// conditionDef is a problem-list condition with the medication that treats it (if any).
type conditionDef struct {
	term
	med   *term
	acute bool // resolves within weeks
}

var (
	rxMetformin    = term{sysRxNorm, "860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"}
	rxLisinopril   = term{sysRxNorm, "314076", "lisinopril 10 MG Oral Tablet"}
	rxAtorvastatin = term{sysRxNorm, "259255", "atorvastatin 80 MG Oral Tablet"}
	rxFluticasone  = term{sysRxNorm, "895994", "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"}
	rxSertraline   = term{sysRxNorm, "312940", "sertraline 50 MG Oral Tablet"}
	rxAmoxicillin  = term{sysRxNorm, "308182", "amoxicillin 250 MG Oral Capsule"}

	condDiabetes = conditionDef{term{sysSNOMED, "44054006", "Diabetes mellitus type 2"}, &rxMetformin, false}
	conditions   = []conditionDef{
		{term{sysSNOMED, "38341003", "Hypertensive disorder"}, &rxLisinopril, false},
		{term{sysSNOMED, "55822004", "Hyperlipidemia"}, &rxAtorvastatin, false},
		{term{sysSNOMED, "195967001", "Asthma"}, &rxFluticasone, false},
		{term{sysSNOMED, "35489007", "Depressive disorder"}, &rxSertraline, false},
		{term{sysSNOMED, "444814009", "Viral sinusitis"}, nil, true},
		{term{sysSNOMED, "43878008", "Streptococcal sore throat"}, &rxAmoxicillin, true},
		{term{sysSNOMED, "162864005", "Body mass index 30+ - obesity"}, nil, false},
		{term{sysSNOMED, "40055000", "Chronic sinusitis"}, nil, false},
	}
)

// allergyDef is an allergy with its category (a FHIR term) and a typical reaction.
type allergyDef struct {
	term
	category string
	reaction term
}

var allergies = []allergyDef{
	{term{sysSNOMED, "91936005", "Allergy to penicillin"}, "medication", term{sysSNOMED, "247472004", "Hives"}},
	{term{sysSNOMED, "91935009", "Allergy to peanuts"}, "food", term{sysSNOMED, "39579001", "Anaphylaxis"}},
	{term{sysSNOMED, "300913006", "Shellfish allergy"}, "food", term{sysSNOMED, "271807003", "Eruption of skin"}},
	{term{sysSNOMED, "418689008", "Allergy to grass pollen"}, "environment", term{sysSNOMED, "49727002", "Cough"}},
	{term{sysSNOMED, "232350006", "House dust mite allergy"}, "environment", term{sysSNOMED, "76067001", "Sneezing"}},
	{term{sysSNOMED, "294505008", "Allergy to amoxicillin"}, "medication", term{sysSNOMED, "271807003", "Eruption of skin"}},
}

var vaccines = []term{
	{sysCVX, "140", "Influenza, seasonal, injectable, preservative free"},
	{sysCVX, "208", "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose"},
	{sysCVX, "113", "Td (adult) preservative free"},
	{sysCVX, "133", "Pneumococcal conjugate PCV 13"},
	{sysCVX, "08", "Hep B, adolescent or pediatric"},
	{sysCVX, "62", "HPV, quadrivalent"},
}

// encounterTypes are SNOMED encounter types with their v3 ActCode class.
var encounterTypes = []struct {
	typ   term
	class term
}{
	{term{sysSNOMED, "185349003", "Encounter for check up (procedure)"}, term{sysActCode, "AMB", "ambulatory"}},
	{term{sysSNOMED, "390906007", "Follow-up encounter (procedure)"}, term{sysActCode, "AMB", "ambulatory"}},
	{term{sysSNOMED, "50849002", "Emergency room admission (procedure)"}, term{sysActCode, "EMER", "emergency"}},
	{term{sysSNOMED, "162673000", "General examination of patient (procedure)"}, term{sysActCode, "AMB", "ambulatory"}},
}

var specialties = []string{"Family Medicine", "Internal Medicine", "Pediatrics", "Cardiology", "Endocrinology"}
